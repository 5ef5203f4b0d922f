#include "avatar/wav2lip/wav2lip_architecture.hpp"

namespace talkserve::avatar::detail {
namespace {

// Builders named after the original's constructor arguments (cin, cout, kernel, stride, padding).
struct BlockBuilder {
  std::string prefix;  // "face_encoder_blocks.3." or "audio_encoder."
  std::vector<Wav2LipLayer> layers;

  BlockBuilder& conv(int in, int out, int kernel, int stride_h, int stride_w, int padding) {
    Wav2LipLayer l;
    l.prefix = prefix + std::to_string(layers.size());
    l.in = in;
    l.out = out;
    l.kernel = kernel;
    l.stride_h = stride_h;
    l.stride_w = stride_w;
    l.padding = padding;
    layers.push_back(l);
    return *this;
  }
  BlockBuilder& conv(int in, int out, int kernel, int stride, int padding) {
    return conv(in, out, kernel, stride, stride, padding);
  }
  // Conv2d(c, c, 3, 1, 1, residual=True): the shape-preserving residual layer.
  BlockBuilder& res(int channels, int count = 1) {
    for (int i = 0; i < count; ++i) {
      conv(channels, channels, 3, 1, 1);
      layers.back().residual = true;
    }
    return *this;
  }
  // Conv2dTranspose(in, out, 3, stride, padding, output_padding).
  BlockBuilder& up(int in, int out, int stride, int padding, int output_padding) {
    conv(in, out, 3, stride, padding);
    layers.back().transposed = true;
    layers.back().output_padding = output_padding;
    return *this;
  }
};

BlockBuilder block(const std::string& list, int index) { return BlockBuilder{list + "." + std::to_string(index) + ".", {}}; }

Wav2LipArchitecture build() {
  Wav2LipArchitecture a;
  const std::string fe = "face_encoder_blocks";
  a.face_encoder.push_back(block(fe, 0).conv(6, 16, 7, 1, 3).layers);                  // 96
  a.face_encoder.push_back(block(fe, 1).conv(16, 32, 3, 2, 1).res(32, 2).layers);      // 48
  a.face_encoder.push_back(block(fe, 2).conv(32, 64, 3, 2, 1).res(64, 3).layers);      // 24
  a.face_encoder.push_back(block(fe, 3).conv(64, 128, 3, 2, 1).res(128, 2).layers);    // 12
  a.face_encoder.push_back(block(fe, 4).conv(128, 256, 3, 2, 1).res(256, 2).layers);   // 6
  a.face_encoder.push_back(block(fe, 5).conv(256, 512, 3, 2, 1).res(512, 1).layers);   // 3
  a.face_encoder.push_back(block(fe, 6).conv(512, 512, 3, 1, 0).conv(512, 512, 1, 1, 0).layers);  // 1

  BlockBuilder audio{"audio_encoder.", {}};
  audio.conv(1, 32, 3, 1, 1).res(32, 2);             // 80 x 16
  audio.conv(32, 64, 3, 3, 1, 1).res(64, 2);         // 27 x 16
  audio.conv(64, 128, 3, 3, 1).res(128, 2);          // 9 x 6
  audio.conv(128, 256, 3, 3, 2, 1).res(256, 1);      // 3 x 3
  audio.conv(256, 512, 3, 1, 0).conv(512, 512, 1, 1, 0);  // 1 x 1
  a.audio_encoder = audio.layers;

  const std::string fd = "face_decoder_blocks";
  a.face_decoder.push_back(block(fd, 0).conv(512, 512, 1, 1, 0).layers);                 // 1, cat -> 1024
  a.face_decoder.push_back(block(fd, 1).up(1024, 512, 1, 0, 0).res(512, 1).layers);      // 3, cat -> 1024
  a.face_decoder.push_back(block(fd, 2).up(1024, 512, 2, 1, 1).res(512, 2).layers);      // 6, cat -> 768
  a.face_decoder.push_back(block(fd, 3).up(768, 384, 2, 1, 1).res(384, 2).layers);       // 12, cat -> 512
  a.face_decoder.push_back(block(fd, 4).up(512, 256, 2, 1, 1).res(256, 2).layers);       // 24, cat -> 320
  a.face_decoder.push_back(block(fd, 5).up(320, 128, 2, 1, 1).res(128, 2).layers);       // 48, cat -> 160
  a.face_decoder.push_back(block(fd, 6).up(160, 64, 2, 1, 1).res(64, 2).layers);         // 96, cat -> 80

  BlockBuilder out{"output_block.", {}};
  out.conv(80, 32, 3, 1, 1).conv(32, 3, 1, 1, 0);
  out.layers.back().batch_norm = false;
  a.output_block = out.layers;
  return a;
}

}  // namespace

const Wav2LipArchitecture& wav2lip_architecture() {
  static const Wav2LipArchitecture a = build();
  return a;
}

std::vector<Wav2LipTensorSpec> wav2lip_tensor_specs(const Wav2LipLayer& l) {
  const long long k = l.kernel;
  // nn.ConvTranspose2d stores its weight as [in, out, k, k].
  const std::vector<long long> weight = l.transposed ? std::vector<long long>{l.in, l.out, k, k}
                                                     : std::vector<long long>{l.out, l.in, k, k};
  if (!l.batch_norm) return {{l.prefix + ".weight", weight}, {l.prefix + ".bias", {l.out}}};
  const std::string c = l.prefix + ".conv_block.0.";
  const std::string n = l.prefix + ".conv_block.1.";
  return {{c + "weight", weight},       {c + "bias", {l.out}},         {n + "weight", {l.out}},
          {n + "bias", {l.out}},        {n + "running_mean", {l.out}}, {n + "running_var", {l.out}}};
}

std::vector<Wav2LipTensorSpec> wav2lip_all_tensor_specs() {
  const Wav2LipArchitecture& a = wav2lip_architecture();
  std::vector<Wav2LipTensorSpec> all;
  auto add = [&](const std::vector<Wav2LipLayer>& layers) {
    for (const auto& l : layers) {
      for (auto& s : wav2lip_tensor_specs(l)) all.push_back(std::move(s));
    }
  };
  for (const auto& b : a.face_encoder) add(b);
  add(a.audio_encoder);
  for (const auto& b : a.face_decoder) add(b);
  add(a.output_block);
  return all;
}

}  // namespace talkserve::avatar::detail
