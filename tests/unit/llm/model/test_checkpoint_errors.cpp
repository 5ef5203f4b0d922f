// Malformed checkpoints and configs must fail with std::runtime_error / invalid_argument
// naming the file and the problem, never crash or allocate from garbage sizes.

#include <catch2/catch.hpp>

#include <cstring>
#include <nlohmann/json.hpp>

#include "hf_fixture.hpp"
#include "talkserve/llm/model_loader.hpp"
#include "test_paths.hpp"

namespace talkserve::llm::test {
namespace {

ModelConfig cfg_for(const std::string& path) {
  ModelConfig cfg;
  cfg.path = path;
  cfg.num_blocks = 4;
  cfg.num_threads = 1;
  return cfg;
}

}  // namespace

TEST_CASE("broken llama2.c checkpoints fail clearly", "[llm][model][errors]") {
  TempDir dir;
  const std::string good = read_file(stories_model());

  write_file(dir.file("trunc.bin"), good.substr(0, good.size() - 100));
  CHECK_THROWS_WITH(load_model(cfg_for(dir.file("trunc.bin"))),
                    Catch::Contains("trunc.bin") && Catch::Contains("truncated"));

  write_file(dir.file("tiny.bin"), good.substr(0, 10));
  CHECK_THROWS_WITH(load_model(cfg_for(dir.file("tiny.bin"))), Catch::Contains("tiny.bin") && Catch::Contains("header"));

  std::string huge = good;
  const int32_t big_dim = 60000;  // plausible-looking, implies gigabytes: rejected before allocating
  std::memcpy(huge.data(), &big_dim, 4);
  write_file(dir.file("huge.bin"), huge);
  CHECK_THROWS_WITH(load_model(cfg_for(dir.file("huge.bin"))), Catch::Contains("huge.bin"));

  std::string neg = good;
  const int32_t minus = -5;
  std::memcpy(neg.data() + 8, &minus, 4);  // n_layers
  write_file(dir.file("neg.bin"), neg);
  CHECK_THROWS_WITH(load_model(cfg_for(dir.file("neg.bin"))), Catch::Contains("neg.bin") && Catch::Contains("n_layers"));

  std::string gqa = good;
  const int32_t three = 3;
  std::memcpy(gqa.data() + 16, &three, 4);  // n_kv_heads 3 does not divide 8 heads
  write_file(dir.file("gqa.bin"), gqa);
  CHECK_THROWS_WITH(load_model(cfg_for(dir.file("gqa.bin"))), Catch::Contains("n_kv_heads"));

  write_file(dir.file("long.bin"), good + "junk");
  CHECK_THROWS_WITH(load_model(cfg_for(dir.file("long.bin"))), Catch::Contains("trailing"));

  CHECK_THROWS_WITH(load_model(cfg_for(dir.file("absent.bin"))), Catch::Contains("absent.bin"));
}

TEST_CASE("broken safetensors checkpoints fail clearly", "[llm][model][errors][safetensors]") {
  TempDir dir;
  const DenseModel m = stories_as_hf();
  write_hf_checkpoint(dir.path(), m, {});
  const std::string good = read_file(dir.file("model.safetensors"));

  SECTION("truncated data") {
    write_file(dir.file("model.safetensors"), good.substr(0, good.size() - 1000));
    CHECK_THROWS_WITH(load_model(cfg_for(dir.path())),
                      Catch::Contains("model.safetensors") && Catch::Contains("truncated"));
  }
  SECTION("header length beyond the file") {
    std::string bad = good;
    const uint64_t n = 1ull << 40;
    std::memcpy(bad.data(), &n, 8);
    write_file(dir.file("model.safetensors"), bad);
    CHECK_THROWS_WITH(load_model(cfg_for(dir.path())), Catch::Contains("header length"));
  }
  SECTION("bad header JSON") {
    std::string bad = good;
    bad[8] = 'x';  // the JSON's opening brace
    write_file(dir.file("model.safetensors"), bad);
    CHECK_THROWS_WITH(load_model(cfg_for(dir.path())), Catch::Contains("bad header JSON"));
  }
  SECTION("a tensor of the wrong shape") {
    DenseModel wrong = m;
    wrong.tensors["model.layers.2.mlp.up_proj.weight"].shape = {86, 128};
    write_hf_checkpoint(dir.path(), wrong, {});
    CHECK_THROWS_WITH(load_model(cfg_for(dir.path())),
                      Catch::Contains("model.layers.2.mlp.up_proj.weight") && Catch::Contains("[86, 128]") &&
                          Catch::Contains("[172, 64]"));
  }
  SECTION("bytes that do not match the shape") {
    std::map<std::string, RawTensor> t;
    t["x"] = {"F32", {4, 4}, std::string(60, '\0')};
    write_file(dir.file("model.safetensors"), safetensors_bytes(t));
    CHECK_THROWS_WITH(load_model(cfg_for(dir.path())), Catch::Contains("do not match its shape"));
  }
  SECTION("a shape whose element count wraps around 64 bits") {
    // 2^24 x 2^40 elements: the product wraps to 0, which matched the 0 data bytes.
    std::map<std::string, RawTensor> t;
    t["x"] = {"F32", {int64_t{1} << 24, int64_t{1} << 40}, std::string()};
    write_file(dir.file("model.safetensors"), safetensors_bytes(t));
    CHECK_THROWS_WITH(load_model(cfg_for(dir.path())), Catch::Contains("x is implausibly large"));
  }
  SECTION("an unsupported dtype") {
    std::map<std::string, RawTensor> t;
    t["x"] = {"I64", {2}, std::string(16, '\0')};
    write_file(dir.file("model.safetensors"), safetensors_bytes(t));
    CHECK_THROWS_WITH(load_model(cfg_for(dir.path())), Catch::Contains("unsupported dtype I64"));
  }
  SECTION("config.json problems") {
    write_file(dir.file("config.json"), "{\"hidden_size\": 64");
    CHECK_THROWS_WITH(load_model(cfg_for(dir.path())), Catch::Contains("config.json") && Catch::Contains("bad JSON"));
    write_file(dir.file("config.json"), R"({"architectures": ["GPT2LMHeadModel"]})");
    CHECK_THROWS_WITH(load_model(cfg_for(dir.path())), Catch::Contains("unsupported architecture GPT2LMHeadModel"));
    write_file(dir.file("config.json"), R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})");
    CHECK_THROWS_WITH(load_model(cfg_for(dir.path())), Catch::Contains("intermediate_size"));
  }
  SECTION("a shard named in the index is missing") {
    WriteOptions opt;
    opt.shards = 2;
    TempDir sharded;
    write_hf_checkpoint(sharded.path(), m, opt);
    std::remove(sharded.file("model-00002-of-00002.safetensors").c_str());
    CHECK_THROWS_WITH(load_model(cfg_for(sharded.path())), Catch::Contains("model-00002-of-00002.safetensors"));
  }
}

TEST_CASE("ModelConfig::validate names the bad key", "[llm][model][errors]") {
  ModelConfig cfg = cfg_for(stories_model());
  CHECK_NOTHROW(cfg.validate());
  cfg.block_size = 0;
  CHECK_THROWS_WITH(cfg.validate(), Catch::Contains("llm.model.block_size"));
  cfg = cfg_for(stories_model());
  cfg.device = "tpu";
  CHECK_THROWS_WITH(cfg.validate(), Catch::Contains("llm.model.device"));
  cfg.device = "cuda:x";
  CHECK_THROWS_WITH(cfg.validate(), Catch::Contains("llm.model.device"));
  cfg = cfg_for(stories_model());
  cfg.dtype = "int8";
  CHECK_THROWS_WITH(cfg.validate(), Catch::Contains("llm.model.dtype"));
  cfg = cfg_for(stories_model());
  cfg.format = "gguf";
  CHECK_THROWS_WITH(cfg.validate(), Catch::Contains("llm.model.format"));
  cfg = cfg_for("");
  CHECK_THROWS_WITH(cfg.validate(), Catch::Contains("llm.model.path"));
  // No CUDA in this libtorch build / on this machine: a clear error, not a crash.
  cfg = cfg_for(stories_model());
  cfg.device = "cuda";
  CHECK_THROWS_AS(load_model(cfg), std::runtime_error);
}

TEST_CASE("KV cache sizing from num_blocks, kv_cache_bytes or the default", "[llm][model]") {
  ModelConfig cfg = cfg_for(stories_model());
  cfg.num_blocks = 0;
  cfg.kv_cache_bytes = 1 << 20;
  // One block: 2 (K,V) x 5 layers x 16 tokens x 4 kv heads x 8 dims x 4 bytes = 20480 bytes.
  CHECK(load_model(cfg)->num_blocks() == (1 << 20) / 20480);
  cfg.kv_cache_bytes = 0;
  CHECK(load_model(cfg)->num_blocks() == 32 * 512 / 16);  // 32 full-length sequences
  cfg.kv_cache_bytes = 100;
  CHECK_THROWS_WITH(load_model(cfg), Catch::Contains("kv_cache_bytes"));
}

}  // namespace talkserve::llm::test
