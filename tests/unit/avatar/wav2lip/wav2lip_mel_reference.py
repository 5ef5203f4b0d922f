#!/usr/bin/env python3
"""Independent reference for the Wav2Lip mel features, in pure Python (no numpy or librosa on the
test machines). It restates the original's audio.melspectrogram() step by step the way librosa 0.7
and scipy compute it, with its own FFT (mixed radix, since n_fft = 800 = 2^5 * 5^2) instead of
the C++ code's direct DFT, so the two share no code.

usage: wav2lip_mel_reference.py IN OUT
  IN:  one float sample per line (16 kHz mono)
  OUT: written as "<bands> <frames>" then bands*frames values, band-major (mel[band][frame])
"""

import cmath
import math
import sys

SR, N_FFT, HOP, WIN, N_MELS, FMIN, FMAX = 16000, 800, 200, 800, 80, 55.0, 7600.0
PREEMPHASIS, MIN_LEVEL_DB, REF_LEVEL_DB, MAX_ABS = 0.97, -100.0, 20.0, 4.0


def fft(x):
    n = len(x)
    if n == 1:
        return list(x)
    p = next(f for f in (2, 3, 5, 7) if n % f == 0)
    m = n // p
    parts = [fft(x[r::p]) for r in range(p)]
    out = [0j] * n
    for k in range(n):
        acc = 0j
        for r in range(p):
            acc += cmath.exp(-2j * math.pi * r * k / n) * parts[r][k % m]
        out[k] = acc
    return out


def hz_to_mel(f):  # librosa, htk=False
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    if f >= min_log_hz:
        return min_log_hz / f_sp + math.log(f / min_log_hz) / (math.log(6.4) / 27.0)
    return f / f_sp


def mel_to_hz(m):
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    if m >= min_log_mel:
        return min_log_hz * math.exp(math.log(6.4) / 27.0 * (m - min_log_mel))
    return f_sp * m


def mel_basis():  # librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax), norm=1
    bins = N_FFT // 2 + 1
    fftfreqs = [SR / 2 * k / (bins - 1) for k in range(bins)]
    lo, hi = hz_to_mel(FMIN), hz_to_mel(FMAX)
    mel_f = [mel_to_hz(lo + (hi - lo) * i / (N_MELS + 1)) for i in range(N_MELS + 2)]
    basis = []
    for i in range(N_MELS):
        enorm = 2.0 / (mel_f[i + 2] - mel_f[i])
        row = []
        for f in fftfreqs:
            lower = (f - mel_f[i]) / (mel_f[i + 1] - mel_f[i])
            upper = (mel_f[i + 2] - f) / (mel_f[i + 2] - mel_f[i + 1])
            row.append(max(0.0, min(lower, upper)) * enorm)
        basis.append(row)
    return basis


def melspectrogram(wav):
    # signal.lfilter([1, -k], [1], wav)
    y = [wav[0]] + [wav[i] - PREEMPHASIS * wav[i - 1] for i in range(1, len(wav))]
    # librosa.stft(center=True): np.pad(y, n_fft // 2, mode="reflect")
    pad = N_FFT // 2
    y = y[pad:0:-1] + y + y[-2:-pad - 2:-1]
    window = [0.5 - 0.5 * math.cos(2 * math.pi * n / WIN) for n in range(WIN)]  # periodic hann
    frames = 1 + (len(y) - N_FFT) // HOP
    basis = mel_basis()
    min_level = math.exp(MIN_LEVEL_DB / 20 * math.log(10))
    mel = [[0.0] * frames for _ in range(N_MELS)]
    for t in range(frames):
        spec = fft([y[t * HOP + n] * window[n] for n in range(N_FFT)])
        mag = [abs(spec[k]) for k in range(N_FFT // 2 + 1)]
        for b in range(N_MELS):
            m = sum(w * a for w, a in zip(basis[b], mag))
            s = 20 * math.log10(max(min_level, m)) - REF_LEVEL_DB
            v = (2 * MAX_ABS) * ((s - MIN_LEVEL_DB) / (-MIN_LEVEL_DB)) - MAX_ABS
            mel[b][t] = min(MAX_ABS, max(-MAX_ABS, v))
    return mel


def main():
    with open(sys.argv[1]) as f:
        wav = [float(line) for line in f if line.strip()]
    mel = melspectrogram(wav)
    with open(sys.argv[2], "w") as f:
        f.write("%d %d\n" % (len(mel), len(mel[0])))
        for row in mel:
            f.write(" ".join("%.7g" % v for v in row) + "\n")


if __name__ == "__main__":
    main()
