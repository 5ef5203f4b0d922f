#pragma once
// A bound FFmpeg's wav demuxer does not apply: the metadata chunks it reads into memory (LIST
// INFO entries, bext coding history, iXML, ID3) are allocated at their declared size before a
// byte is read, and that size is only checked against the enclosing chunk's own claim, never
// against the input. A 7 KB upload whose LIST chunk claimed 2.7 GB made one decode allocate and
// zero 2.1 GB (fuzz_audio_decoder).

#include <cstdint>
#include <span>

namespace talkserve::media::detail {

// Walks the top-level chunks of a RIFF/RIFX/RF64/BW64 WAVE file the way the demuxer does and
// throws MediaError(corrupt) for a chunk of the kinds above that claims more bytes than the
// whole input. A chunk cut short by the end of a cut-off upload claims less and passes, as does
// sample data of any claimed length; the walk stops where the demuxer stops. Input that is not
// a WAVE file is left alone.
void check_wav_chunk_sizes(std::span<const std::uint8_t> bytes);

}  // namespace talkserve::media::detail
