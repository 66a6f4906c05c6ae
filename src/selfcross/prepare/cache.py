"""The per-utterance feature cache of a data root, and the extraction workers that fill it.

Why a cache: extraction is the slow part of preparation (ResNet-101 frames, openSMILE); a
rerun, or one resumed after a crash, recomputes nothing that is cached. Layout:
``OUT_ROOT/.cache/<modality>-<config key>/<utt>.<input key>.npy`` (valid frames only). The
config key hashes the extractor settings (and the image encoder's identity), so a changed
config never reuses stale features; the input key hashes the source path, size, span and
frame half.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfcross.processes import exit_with_driver

#: Name of the feature cache folder inside a data root.
CACHE_DIR = ".cache"
#: Bump when the cached arrays' meaning changes (invalidates every cache).
CACHE_VERSION = 1



def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def encoder_identity(encoder: Any) -> str:
    """A stable description of an injected image encoder (class + parameter hash).

    Why: cached video features depend on the encoder's weights, not only on the config.
    """
    if encoder is None:
        return "default"
    if isinstance(encoder, str):
        return encoder
    h = hashlib.sha256(f"{type(encoder).__module__}.{type(encoder).__qualname__}".encode())
    state = getattr(encoder, "state_dict", None)
    if callable(state):
        for k, v in sorted(state().items()):
            h.update(k.encode())
            h.update(np.ascontiguousarray(v.detach().cpu().numpy()).tobytes())
    return f"{type(encoder).__qualname__}:{h.hexdigest()[:16]}"


#: Audio settings that do not change the cached (raw) frames, with the value whose key is
#: left out of the hash so caches made before the setting existed stay valid.
_CACHE_NEUTRAL: dict[str, Any] = {"features": "mfcc", "descriptors": [], "speaker_norm": None}


def cache_key(modality: str, config: dict[str, Any], encoder: str = "") -> str:
    """Folder name of one extractor setting's cache: ``<modality>-<12 hex>``."""
    if modality == "audio":  # speaker normalisation is applied after the cache
        config = {k: v for k, v in config.items()
                  if k not in _CACHE_NEUTRAL or (k != "speaker_norm" and v != _CACHE_NEUTRAL[k])}
    return f"{modality}-{_digest([CACHE_VERSION, modality, config, encoder])[:12]}"


def _input_key(path: Path, span: tuple[float, float] | None, side: str) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        size = -1
    return _digest([str(path.resolve()), size, span, side])[:10]


def _text_key(text: str) -> str:
    return _digest(["text", text])[:10]


def _safe_name(utt_id: str) -> str:
    bad = set('/\\:*?"<>|') | {"\0"}
    return "".join("_" if c in bad else c for c in utt_id)


# --------------------------------------------------------------------------- extraction

_WORKER: dict[str, Any] = {}


def _make_extractor(modality: str, config: dict[str, Any], encoder: Any) -> Any:
    from selfcross.features.pretrained import is_hf_config, make_extractor

    if is_hf_config(config):
        return make_extractor(modality, config)
    if modality == "audio":
        from selfcross.features.audio import AudioConfig, AudioFeatures

        return AudioFeatures(AudioConfig.from_dict(config))
    from selfcross.features.video import VideoConfig, VideoFeatures

    return VideoFeatures(VideoConfig.from_dict(config), encoder=encoder)


def _init_worker(
    modality: str, config: dict[str, Any], encoder: Any, threads: int | None, driver_pid: int | None = None
) -> None:
    """Set up one extraction worker; a pool worker (``driver_pid`` given) ends with its driver."""
    if driver_pid is not None:
        exit_with_driver(driver_pid)
    if threads:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
    _WORKER["extractor"] = _make_extractor(modality, config, encoder)
    _WORKER["modality"] = modality
    if modality == "audio" and hasattr(_WORKER["extractor"], "from_waveform"):  # the MFCC extractor
        _warm_up_audio(_WORKER["extractor"])


def _warm_up_audio(extractor: Any) -> None:
    """Analyse a second of silence once, so librosa's imports and JIT compilation (tens of
    seconds on a slow machine) happen before the first clip and not inside its timing."""
    import soundfile  # noqa: F401  (the decoder of the first real clip)

    rate = extractor.config.sample_rate
    extractor.from_waveform(np.zeros(rate, dtype=np.float32))


@dataclass(frozen=True)
class _Job:
    utt: str
    source: str
    span: tuple[float, float] | None
    side: str
    out: str


#: What a failed extraction may raise (anything else is a bug and keeps its traceback).
_EXTRACTION_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, EOFError)


def _run_job(job: _Job) -> tuple[str, int | None, str]:
    """Extract one utterance into its cache file; returns ``(utt, valid_len | None, message)``:
    the error when ``valid_len`` is ``None``, else notes on an odd clip (silent, too short)."""
    from selfcross.errors import SelfcrossError
    from selfcross.features.audio import ClipTooShort

    ex = _WORKER["extractor"]
    start, end = job.span if job.span is not None else (None, None)
    try:
        if _WORKER["modality"] == "video":
            feats, n = ex.extract(job.source, start, end, side=job.side)
        elif _WORKER["modality"] == "text":  # the source is the transcript itself
            feats, n = ex.extract(job.source)
        else:
            feats, n = ex.extract(job.source, start, end)
    except ClipTooShort as e:  # readable, yet no frame: left out with a warning, never "unreadable"
        return job.utt, 0, e.problem
    except (SelfcrossError, *_EXTRACTION_ERRORS) as e:
        return job.utt, None, str(e)
    return _store(job, feats, n, "; ".join(getattr(ex, "last_notes", ())))


def _run_batch(jobs: list[_Job]) -> list[tuple[str, int | None, str]]:
    """Extract several utterances in one call of an extractor that batches (pretrained
    encoders); a failing batch is rerun job by job so the error lands on its utterance."""
    from selfcross.errors import SelfcrossError

    ex = _WORKER["extractor"]
    many = getattr(ex, "extract_many", None)
    if many is None or len(jobs) == 1:
        return [_run_job(j) for j in jobs]
    if _WORKER["modality"] == "text":
        items: list[Any] = [j.source for j in jobs]
    else:
        items = [(j.source, *(j.span if j.span is not None else (None, None))) for j in jobs]
    try:
        results = many(items)
    except (SelfcrossError, *_EXTRACTION_ERRORS):
        return [_run_job(j) for j in jobs]
    return [(j.utt, None, str(r)) if isinstance(r, Exception) else _store(j, *r)
            for j, r in zip(jobs, results)]


def _store(job: _Job, feats: np.ndarray, n: int, note: str = "") -> tuple[str, int | None, str]:
    """Write the valid rows of one utterance's features to its cache file."""
    n = int(n)
    if n > 0:
        out = Path(job.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(feats[:n], dtype=np.float32), allow_pickle=False)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return job.utt, n, note


def _extract_modality(
    modality: str,
    jobs: list[_Job],
    config: dict[str, Any],
    encoder: Any,
    workers: int,
    progress: bool,
) -> tuple[dict[str, int], dict[str, str], dict[str, str]]:
    """Run the jobs not cached yet; returns (valid lengths, errors, notes on odd clips), by utt."""
    from tqdm.auto import tqdm

    lengths: dict[str, int] = {}
    errors: dict[str, str] = {}
    notes: dict[str, str] = {}
    if not jobs:
        return lengths, errors, notes
    if workers <= 1:  # set up (and warm up) before the bar, so its first clip is timed fairly
        if progress:
            print(f"{modality} features: loading the extractor (one-time start-up) ...", file=sys.stderr)
        _init_worker(modality, config, encoder, None)
    desc = f"{modality} features" if workers <= 1 else f"{modality} features (starting {workers} workers)"
    bar = tqdm(total=len(jobs), desc=desc, unit="utt", disable=not progress)
    try:
        results = (_serial_results(jobs, config) if workers <= 1
                   else _pool_results(modality, jobs, config, encoder, workers))
        for done, (utt, n, err) in enumerate(results, start=1):
            if n is None:
                errors[utt] = err
            else:
                lengths[utt] = n
                if err:
                    notes[utt] = err
            if done == 1 and workers > 1:  # workers are up: time the rate from here
                bar.set_description(f"{modality} features")
                bar.reset(total=len(jobs))
            bar.update()
    finally:
        bar.close()
        _WORKER.clear()
    return lengths, errors, notes


def _serial_results(jobs: list[_Job], config: dict[str, Any]) -> Iterator[tuple[str, int | None, str]]:
    """Results of ``jobs`` run in this process, in batches when the extractor takes several clips."""
    size = int(config.get("batch_size", 1)) if hasattr(_WORKER["extractor"], "extract_many") else 1
    for k in range(0, len(jobs), size):
        yield from _run_batch(jobs[k : k + size])


def _pool_results(
    modality: str, jobs: list[_Job], config: dict[str, Any], encoder: Any, workers: int
) -> Iterator[tuple[str, int | None, str]]:
    """Results of ``jobs`` run by ``workers`` spawned processes, in completion order."""
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context("spawn"),  # safe with torch/CUDA already initialized
        initializer=_init_worker,
        initargs=(modality, config, encoder, threads, os.getpid()),
    ) as pool:
        futures = [pool.submit(_run_job, j) for j in jobs]
        for fut in as_completed(futures):
            yield fut.result()
