#pragma once
// A caching CPU allocator for libtorch tensors, installed process-wide by the model loaders.
//
// Why: a model step allocates the same large temporaries again and again (Whisper's encoder:
// megabytes per layer and head; the decoder and the LLM: per step). glibc hands blocks over
// its mmap threshold straight from the kernel and back (the server fixes that threshold at
// 256 KiB so its heap does not fragment, app/heap_tuning.cpp), so every such tensor costs an
// mmap, a page fault per 4 KiB touched, and an munmap: a third of a transcription's time in
// the kernel. This allocator keeps freed tensor blocks of 256 KiB and more (rounded up to
// 4 KiB) and hands them out again for the same size, up to a cap on the bytes it holds;
// smaller blocks and anything beyond the cap go to malloc and free as before. It only sees
// torch's CPU tensors, so the rest of the server keeps the heap policy it was tuned with.
//
// Thread-safety: allocation and release may happen on any thread (one mutex).

#include <cstddef>

namespace talkserve::llm::detail {

// Installs the allocator for every later CPU tensor (idempotent; the first cap wins).
void install_cpu_caching_allocator(std::size_t max_cached_bytes = std::size_t{512} << 20);

// Bytes of freed blocks the allocator holds for reuse, and the most it may hold (both 0 before
// it is installed).
std::size_t cpu_caching_allocator_cached_bytes();
// Frees every cached block (e.g. after a model's warm-up, so its working memory is not
// resident while the server idles after load).
void cpu_caching_allocator_trim();
std::size_t cpu_caching_allocator_cap();

}  // namespace talkserve::llm::detail
