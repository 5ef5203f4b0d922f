// The caching CPU allocator behind every torch tensor of the server: freed large blocks come
// back for the same size, their contents are the new tensor's to write, small blocks and
// blocks past the cap are not kept, and many threads may allocate and free at once.

#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "llm/model/cpu_caching_allocator.hpp"

using talkserve::llm::detail::cpu_caching_allocator_cached_bytes;
using talkserve::llm::detail::cpu_caching_allocator_cap;
using talkserve::llm::detail::install_cpu_caching_allocator;

TEST_CASE("caching CPU allocator: freed large tensors are reused by size, small ones are not kept",
          "[llm][allocator]") {
  install_cpu_caching_allocator(64u << 20);
  const std::size_t before = cpu_caching_allocator_cached_bytes();
  const void* first = nullptr;
  {
    torch::Tensor t = torch::full({1 << 18}, 3.0f);  // 1 MiB
    first = t.data_ptr();
  }
  CHECK(cpu_caching_allocator_cached_bytes() == before + (1u << 20));
  {
    torch::Tensor again = torch::empty({1 << 18});
    CHECK(again.data_ptr() == first);  // the same block, not a fresh mapping
    CHECK(cpu_caching_allocator_cached_bytes() == before);
    again.fill_(7.0f);
    CHECK(again.sum().item<float>() == 7.0f * (1 << 18));
  }
  {
    torch::Tensor small = torch::ones({1000});
    CHECK(small.sum().item<float>() == 1000.0f);
  }
  CHECK(cpu_caching_allocator_cached_bytes() == before + (1u << 20));  // the small block went to free()
  {
    torch::Tensor other = torch::empty({(1 << 18) + 7});  // another size: a block of its own
    CHECK(other.data_ptr() != first);
  }
  talkserve::llm::detail::cpu_caching_allocator_trim();
  CHECK(cpu_caching_allocator_cached_bytes() == 0);
}

TEST_CASE("caching CPU allocator: the cached bytes stay under the cap", "[llm][allocator]") {
  install_cpu_caching_allocator(64u << 20);  // the first cap wins (a model loader's, if one ran)
  const std::size_t cap = cpu_caching_allocator_cap();
  const std::size_t blocks = cap / (4u << 20) + 8;  // more 4 MiB blocks than fit
  {
    std::vector<torch::Tensor> many;
    for (std::size_t i = 0; i < blocks; ++i) many.push_back(torch::empty({1 << 20}));
  }
  CHECK(cpu_caching_allocator_cached_bytes() <= cap);
  CHECK(cpu_caching_allocator_cached_bytes() + (4u << 20) > cap);  // filled up to the cap
}

TEST_CASE("caching CPU allocator: threads allocating and freeing at once keep their data", "[llm][allocator]") {
  install_cpu_caching_allocator(64u << 20);
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([k, &bad] {
      for (int i = 0; i < 200; ++i) {
        torch::Tensor t = torch::full({(1 << 16) * (1 + i % 3)}, static_cast<float>(k));
        if (t.max().item<float>() != static_cast<float>(k) || t.min().item<float>() != static_cast<float>(k)) ++bad[k];
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(bad == std::vector<int>(4, 0));
}
