// SentencePiece .model files of the BPE kind (Llama 1/2, Mistral, TinyLlama, Vicuna...),
// parsed natively. Debian's libsentencepiece.so bundles and exports its own protobuf, which
// clashes with the libprotobuf that libtorch loads (a crash in static initialisation when
// both are in one process), so the server cannot link it; the BPE model is small enough to
// implement: the .model file is a protobuf ModelProto, read here with a minimal wire-format
// reader, and encoding is the score-ordered BPE of score_bpe.hpp.
// Supported: BPE models, byte_fallback, user-defined pieces, add_dummy_prefix,
// remove_extra_whitespaces. Not supported: unigram models (rejected with a clear error);
// a precompiled NFKC charsmap is ignored (Llama's models use the identity normalizer).

#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "llm/tokenizer/read_file.hpp"
#include "llm/tokenizer/score_bpe.hpp"
#include "llm/tokenizer/tokenizer_factories.hpp"

namespace talkserve::llm::detail {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's space

enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// Protobuf wire-format reader over one message's bytes. Every overrun throws.
class WireReader {
 public:
  WireReader(std::string_view data, const std::string& path) : data_(data), path_(path) {}
  bool done() const { return pos_ >= data_.size(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) fail("truncated varint");
      const auto b = static_cast<unsigned char>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    fail("varint longer than 10 bytes");
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > data_.size() - pos_) fail("length-delimited field runs past the end");
    std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint32_t fixed32() {
    if (data_.size() - pos_ < 4) fail("truncated fixed32");
    uint32_t v = 0;
    std::memcpy(&v, data_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  void skip(int wire_type) {
    switch (wire_type) {
      case 0: varint(); break;
      case 1: if (data_.size() - pos_ < 8) fail("truncated fixed64"); pos_ += 8; break;
      case 2: bytes(); break;
      case 5: fixed32(); break;
      default: fail("unsupported wire type " + std::to_string(wire_type));
    }
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("sentencepiece model " + path_ + ": malformed protobuf: " + what);
  }

 private:
  std::string_view data_;
  const std::string& path_;
  size_t pos_ = 0;
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) {
    const std::string data = read_whole_file(path, 512u << 20, "sentencepiece model");
    int model_type = 1;  // proto default: UNIGRAM
    bool byte_fallback = false;
    WireReader top(data, path);
    while (!top.done()) {
      const uint64_t key = top.varint();
      const auto field = key >> 3;
      const int wt = static_cast<int>(key & 7);
      if (field == 1 && wt == 2) {
        parse_piece(WireReader(top.bytes(), path));
      } else if (field == 2 && wt == 2) {  // TrainerSpec
        WireReader r(top.bytes(), path);
        while (!r.done()) {
          const uint64_t k = r.varint();
          if ((k >> 3) == 3 && (k & 7) == 0) model_type = static_cast<int>(r.varint());
          else if ((k >> 3) == 35 && (k & 7) == 0) byte_fallback = r.varint() != 0;
          else r.skip(static_cast<int>(k & 7));
        }
      } else if (field == 3 && wt == 2) {  // NormalizerSpec
        WireReader r(top.bytes(), path);
        while (!r.done()) {
          const uint64_t k = r.varint();
          if ((k >> 3) == 3 && (k & 7) == 0) add_dummy_prefix_ = r.varint() != 0;
          else if ((k >> 3) == 4 && (k & 7) == 0) remove_extra_whitespaces_ = r.varint() != 0;
          else r.skip(static_cast<int>(k & 7));
        }
      } else {
        top.skip(wt);
      }
    }
    if (v_.pieces.empty()) throw std::runtime_error("sentencepiece model " + path + ": no pieces");
    if (model_type != 2) {
      throw std::runtime_error("sentencepiece model " + path + ": model type " +
                               std::to_string(model_type) + " is not BPE (2); only BPE models are supported");
    }
    for (size_t i = 0; i < v_.pieces.size(); ++i) {
      const auto id = static_cast<int32_t>(i);
      const int type = types_[i];
      if (type == kNormal || type == kUserDefined) v_.mergeable.emplace(v_.pieces[i], id);
      if (type == kUserDefined) user_defined_.push_back(id);
      if (type == kUnknown) v_.unk_id = id;
      if (type == kControl) add_special(v_.pieces[i], id);
      if (type == kByte && byte_fallback) {
        const int b = parse_byte_piece(v_.pieces[i]);
        if (b >= 0) v_.byte_token[b] = id;
      }
    }
    bos_id_ = special_id("<s>");
    eos_id_ = special_id("</s>");
    add_stop(eos_id_);
  }

  std::string decode_piece(int32_t id, int32_t prev_id) const override {
    if (id < 0 || id >= vocab_size()) throw std::out_of_range("token id " + std::to_string(id));
    const auto i = static_cast<size_t>(id);
    if (types_[i] == kControl || types_[i] == kUnused) return {};
    if (types_[i] == kUnknown) return " \xE2\x81\x87 ";  // SentencePiece renders <unk> as " ⁇ "
    if (types_[i] == kByte) {
      const int b = parse_byte_piece(v_.pieces[i]);
      return b >= 0 ? std::string(1, static_cast<char>(b)) : std::string();
    }
    const std::string& piece = v_.pieces[i];
    std::string out;
    out.reserve(piece.size());
    for (size_t k = 0; k < piece.size();) {
      if (piece.compare(k, kSpaceMarker.size(), kSpaceMarker) == 0) {
        out += ' ';
        k += kSpaceMarker.size();
      } else {
        out += piece[k++];
      }
    }
    // The dummy-prefix space of the first word is dropped after BOS.
    if (add_dummy_prefix_ && prev_id == bos_id_ && bos_id_ >= 0 && !out.empty() && out[0] == ' ') {
      out.erase(0, 1);
    }
    return out;
  }

  int vocab_size() const override { return static_cast<int>(v_.pieces.size()); }
  std::string_view kind() const override { return "sentencepiece"; }

 protected:
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const override {
    std::string norm;
    norm.reserve(text.size() + 8);
    if (remove_extra_whitespaces_) {
      // Strip leading/trailing spaces and collapse runs, as SentencePiece's normalizer does.
      bool pending_space = false;
      for (char c : text) {
        if (c == ' ') {
          pending_space = !norm.empty();
          continue;
        }
        if (pending_space) norm += ' ';
        pending_space = false;
        norm += c;
      }
    } else {
      norm.assign(text);
    }
    if (norm.empty()) return;
    std::string escaped;
    if (add_dummy_prefix_) escaped += kSpaceMarker;
    for (char c : norm) {
      if (c == ' ') escaped += kSpaceMarker;
      else escaped += c;
    }
    // User-defined pieces are never split: encode the stretches between them.
    size_t start = 0;
    size_t i = 0;
    while (i < escaped.size()) {
      int32_t hit = -1;
      size_t hit_len = 0;
      for (int32_t id : user_defined_) {
        const std::string& p = v_.pieces[static_cast<size_t>(id)];
        if (p.size() > hit_len && escaped.compare(i, p.size(), p) == 0) {
          hit = id;
          hit_len = p.size();
        }
      }
      if (hit < 0) {
        ++i;
        continue;
      }
      if (i > start) score_bpe_encode(v_, std::string_view(escaped).substr(start, i - start), out);
      out.push_back(hit);
      i += hit_len;
      start = i;
    }
    if (start < escaped.size()) score_bpe_encode(v_, std::string_view(escaped).substr(start), out);
  }

 private:
  void parse_piece(WireReader r) {
    std::string piece;
    float score = 0;
    int type = kNormal;
    while (!r.done()) {
      const uint64_t k = r.varint();
      const auto field = k >> 3;
      if (field == 1 && (k & 7) == 2) {
        piece = std::string(r.bytes());
      } else if (field == 2 && (k & 7) == 5) {
        const uint32_t bits = r.fixed32();
        std::memcpy(&score, &bits, 4);
      } else if (field == 3 && (k & 7) == 0) {
        type = static_cast<int>(r.varint());
      } else {
        r.skip(static_cast<int>(k & 7));
      }
    }
    v_.pieces.push_back(std::move(piece));
    v_.scores.push_back(score);
    types_.push_back(type);
  }

  ScoreBpeVocab v_;
  std::vector<int> types_;
  std::vector<int32_t> user_defined_;
  bool add_dummy_prefix_ = true;
  bool remove_extra_whitespaces_ = true;
};

}  // namespace

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace talkserve::llm::detail
