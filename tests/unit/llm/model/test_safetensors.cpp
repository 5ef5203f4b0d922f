#include <catch2/catch.hpp>

#include <random>

#include "hf_fixture.hpp"
#include "talkserve/llm/model_loader.hpp"
#include "test_paths.hpp"

namespace talkserve::llm::test {
namespace {

const std::vector<int32_t> kPrompt = {1, 403, 407, 261, 378};  // <s> Once upon a time
const std::vector<int32_t> kContinuation = {432, 317, 263, 13, 100};

std::unique_ptr<ModelRunner> load(const std::string& path, const std::string& format = "auto") {
  ModelConfig cfg;
  cfg.path = path;
  cfg.format = format;
  cfg.num_blocks = 8;
  cfg.num_threads = 1;
  return load_model(cfg);
}

void check_close(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b, float tol) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << i);
    CHECK(max_abs_diff(a[i], b[i]) < tol);
  }
}

}  // namespace

TEST_CASE("the runner matches a naive reference forward pass", "[llm][model]") {
  const DenseModel m = stories_as_hf();
  auto model = load(stories_model());
  const auto rows = runner_logits(*model, kPrompt, kContinuation);
  std::vector<int32_t> seq = kPrompt;
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("after " << seq.size() << " tokens");
    CHECK(max_abs_diff(rows[i], reference_logits(m, seq)) < 1e-4f);
    if (i < kContinuation.size()) seq.push_back(kContinuation[i]);
  }
}

// The CPU kernels have code paths by head size (8/16 with register accumulators, 32 to 128
// streaming V, any other size generic) and by query heads per KV head (pairs, an odd one
// out, one); stories260K covers only head size 8 with 2 heads per KV head. A prompt of 37
// tokens spans three 16-token blocks, the last one partial.
TEST_CASE("random models of other head shapes match the naive reference forward pass", "[llm][model]") {
  struct Shape {
    int dim, heads, kv_heads;
  };
  const Shape shape = GENERATE(Shape{64, 4, 4},    // head 16, one query head per KV head
                               Shape{96, 3, 1},    // head 32, three query heads per KV head
                               Shape{128, 2, 1},   // head 64, a pair
                               Shape{48, 4, 2});   // head 12: the generic kernel
  INFO("dim " << shape.dim << " heads " << shape.heads << " kv heads " << shape.kv_heads);
  const DenseModel m = random_model(shape.dim, 2 * shape.dim, 2, shape.heads, shape.kv_heads, 97, 128, 11);
  TempDir dir;
  write_hf_checkpoint(dir.path(), m, WriteOptions{});
  auto model = load(dir.path());
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> token(0, 96);
  std::vector<int32_t> prompt(37), continuation(4);
  for (int32_t& t : prompt) t = token(rng);
  for (int32_t& t : continuation) t = token(rng);
  const auto rows = runner_logits(*model, prompt, continuation);
  std::vector<int32_t> seq = prompt;
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("after " << seq.size() << " tokens");
    CHECK(max_abs_diff(rows[i], reference_logits(m, seq)) < 1e-4f);
    if (i < continuation.size()) seq.push_back(continuation[i]);
  }
}

TEST_CASE("HF Llama safetensors give the llama2.c logits", "[llm][model][safetensors]") {
  TempDir dir;
  write_hf_checkpoint(dir.path(), stories_as_hf(), {});
  auto hf = load(dir.path());
  CHECK(hf->info().name == dir.path().substr(dir.path().rfind('/') + 1));
  CHECK(hf->info().n_kv_heads == 4);
  auto ref = load(stories_model());
  check_close(runner_logits(*hf, kPrompt, kContinuation), runner_logits(*ref, kPrompt, kContinuation), 1e-4f);
  // A .safetensors file path (config.json beside it) works too.
  auto by_file = load(dir.file("model.safetensors"));
  check_close(runner_logits(*by_file, kPrompt, {}), runner_logits(*ref, kPrompt, {}), 1e-4f);
}

TEST_CASE("Qwen2 safetensors: QKV bias, untied lm_head, rope_theta, eps", "[llm][model][safetensors]") {
  DenseModel m = stories_as_hf();
  m.qkv_bias = true;
  m.tied = false;
  m.rope_theta = 1e6;
  m.rms_eps = 1e-6;
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 0.5f);
  const int64_t QD = m.heads * m.head_dim(), KD = m.kv_heads * m.head_dim();
  for (int l = 0; l < m.layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".self_attn.";
    for (auto [name, n] : {std::pair<const char*, int64_t>{"q_proj.bias", QD}, {"k_proj.bias", KD}, {"v_proj.bias", KD}}) {
      DenseTensor b{{n}, std::vector<float>(static_cast<size_t>(n))};
      for (float& v : b.data) v = nd(rng);
      m.tensors[pre + name] = b;
    }
  }
  DenseTensor head = m.tensors.at("model.embed_tokens.weight");
  for (float& v : head.data) v *= 0.5f;
  m.tensors["lm_head.weight"] = head;
  TempDir dir;
  WriteOptions opt;
  opt.architecture = "Qwen2ForCausalLM";
  write_hf_checkpoint(dir.path(), m, opt);
  auto model = load(dir.path());
  std::vector<int32_t> seq = kPrompt;
  const auto rows = runner_logits(*model, kPrompt, {kContinuation[0], kContinuation[1]});
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(max_abs_diff(rows[i], reference_logits(m, seq)) < 1e-4f);
    seq.push_back(kContinuation[i]);
  }
  // Without its bias tensors the Qwen2 checkpoint is rejected, naming the tensor.
  for (int l = 0; l < m.layers; ++l) m.tensors.erase("model.layers." + std::to_string(l) + ".self_attn.k_proj.bias");
  write_hf_checkpoint(dir.path(), m, opt);
  CHECK_THROWS_WITH(load(dir.path()), Catch::Contains("missing tensor model.layers.0.self_attn.k_proj.bias"));
}

TEST_CASE("BF16 and F16 checkpoints are converted to float32", "[llm][model][safetensors]") {
  for (const std::string dtype : {"BF16", "F16"}) {
    DYNAMIC_SECTION(dtype) {
      DenseModel rounded = stories_as_hf();
      round_weights(rounded, dtype);
      TempDir half_dir, f32_dir;
      WriteOptions opt;
      opt.dtype = dtype;
      write_hf_checkpoint(half_dir.path(), stories_as_hf(), opt);
      write_hf_checkpoint(f32_dir.path(), rounded, {});
      auto half = load(half_dir.path());
      auto f32 = load(f32_dir.path());
      // Same values once widened: the logits agree to float32 rounding.
      check_close(runner_logits(*half, kPrompt, kContinuation), runner_logits(*f32, kPrompt, kContinuation), 1e-5f);
      // And stay near the full-precision model.
      auto ref = load(stories_model());
      const float tol = dtype == "BF16" ? 0.5f : 0.05f;
      check_close(runner_logits(*half, kPrompt, {}), runner_logits(*ref, kPrompt, {}), tol);
    }
  }
}

TEST_CASE("sharded checkpoints load through model.safetensors.index.json", "[llm][model][safetensors]") {
  TempDir one, three;
  write_hf_checkpoint(one.path(), stories_as_hf(), {});
  WriteOptions opt;
  opt.shards = 3;
  write_hf_checkpoint(three.path(), stories_as_hf(), opt);
  auto a = load(one.path());
  auto b = load(three.path());
  check_close(runner_logits(*a, kPrompt, kContinuation), runner_logits(*b, kPrompt, kContinuation), 1e-6f);
}

}  // namespace talkserve::llm::test
