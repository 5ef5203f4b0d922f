#pragma once
// A bound FFmpeg's RIFF demuxers do not apply: the metadata chunks they read into memory (LIST
// INFO entries in WAV and AVI, WAV's bext coding history, iXML, ID3) are allocated at their
// declared size before a byte is read, and that size is only checked against the enclosing
// chunk's own claim, never against the input. A 7 KB WAV upload whose LIST chunk claimed 2.7 GB
// made one decode allocate and zero 2.1 GB (fuzz_audio_decoder); an AVI does the same.

#include <cstdint>
#include <span>

namespace talkserve::media::detail {

// Throws MediaError(corrupt) when, in `bytes`,
//  * a LIST INFO chunk (tag, size, "INFO": what any demuxer reads before it allocates the
//    entries) claims more bytes than the whole input, wherever it sits; or
//  * the input is a RIFF/RIFX/RF64/BW64 WAVE file and, walking its top-level chunks the way the
//    wav demuxer does, a chunk of the kinds above claims more bytes than the whole input.
// A chunk cut short by the end of a cut-off upload claims less and passes, as does sample data
// of any claimed length; what is left for the demuxer to allocate stays under about twice the
// upload. Run it before avformat_open_input on every upload.
void check_riff_chunk_claims(std::span<const std::uint8_t> bytes);

}  // namespace talkserve::media::detail
