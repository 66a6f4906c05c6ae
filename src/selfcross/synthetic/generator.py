"""The synthetic benchmark: an IEMOCAP-shaped data root generated from a seed.

Why: the paper's data (IEMOCAP) is licence-gated, so tests, the demo and CI need a data set
that (1) is written in exactly the processed fold layout, (2) has IEMOCAP's structure
(5 sessions x 2 speakers, 7 unbalanced classes, variable lengths with zero padding, a few
zero-video utterances) and (3) reproduces the paper's *qualitative* modality ordering
(text > video > audio alone, every pair beats its parts, all three beat every pair).

How it is built (see docs/synthetic.md):
    * every utterance has a class ``c``, a session (1-5), a speaker (F/M) and a duration;
    * each modality ``m`` draws its own latent ``z_m = centroid_m[c] + speaker_m + noise`` in
      a 9-d space [arousal, valence, class identity]: the centroids weight the axes
      differently per modality (audio arousal only; video and text valence and class
      identity, text more strongly), so the modalities carry partial, complementary
      evidence whose noises are independent given the class. Video and text's identity
      of a class is partly shared with its arousal twin (the class of about the same
      valence that only arousal tells apart: ang/sad, exc/hap, sur/neu), so audio resolves
      confusions that video and text leave and the tri-modal set gains over every pair;
    * audio / video frames are a fixed random projection of ``z_m`` plus a speaker offset
      and frame noise, for the utterance's valid length, then zero padding;
    * text is word ids: each token is a filler word or, with probability ``p_cue``, a cue word
      drawn with probability ``softmax(beta * u_w . z_text / 3)``; the directions ``u_w`` are
      random with a fixed norm (so how much text tells does not hinge on the draw of a few
      long ones) and ``W_embedding`` maps cue words along them (row 0 = padding = zeros,
      row 1 = unknown).

Folds: fold ``k`` tests on session ``k``; from the other four sessions a stratified random
``dev_fraction`` (15 %) of each class is the dev split and the rest is train.
Rows are generated from per-utterance seeds, so the data depends only on ``seed`` and the
preset (not on chunk sizes or fold order).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from selfcross.errors import ConfigError
from selfcross.folds import layout, writer
from selfcross.labels import IEMOCAP7, IEMOCAP7_COUNTS

#: Per-class arousal and valence (IEMOCAP7 order: ang, exc, hap, sad, fru, sur, neu).
AROUSAL = np.array([1.0, 0.8, 0.3, -0.9, 0.2, 0.9, -0.6])
VALENCE = np.array([-0.8, 0.7, 1.0, -0.8, -0.5, 0.3, 0.0])
#: Each class's arousal twin: the class of about the same valence that arousal tells apart
#: (ang/sad, exc/hap, sur/neu; fru has none).
AROUSAL_TWIN = np.array([3, 2, 1, 0, 4, 6, 5])
LATENT_DIM = 2 + len(IEMOCAP7)

_STREAM_AUDIO, _STREAM_VIDEO, _STREAM_PROSODY = 1, 2, 3
_IN_MEMORY_BYTES = 256 * 2**20


@dataclass(frozen=True)
class SyntheticPreset:
    """Sizes and signal strengths of one preset.

    ``weights[m] = (arousal, valence, identity)`` scale the three parts of modality ``m``'s
    class centroid in the latent space; the latent noise has unit variance per axis, so
    these are signal-to-noise ratios. Only audio carries arousal, so it adds evidence the
    others lack (every fusion gains from it) although it is the weakest alone; text carries
    the same kind of evidence as video, more strongly. ``twin_share`` is the part of a
    class's identity vector that points at its arousal twin (:data:`AROUSAL_TWIN`): 0 keeps
    every class equally far apart, 0.5 would give twins the same identity vector; at
    0.3 twins stay close in video and text, a confusion that only audio's arousal resolves
    (the planted tri-modal gain over the best pair). Small speaker offsets
    (``speaker_sd`` in the latent space, ``speaker_feat_sd`` per feature) keep the ordering
    from depending on which speakers a data seed draws for the test session
    (benchmarks/synthetic_ordering.py measures it over data seeds).
    """

    n_utterances: int
    audio: tuple[int, int]
    video: tuple[int, int]
    text: tuple[int, int]
    vocab: int
    prosody_dim: int = 35
    weights: tuple[tuple[str, tuple[float, float, float]], ...] = (
        ("audio", (1.2, 0.0, 0.0)),
        ("video", (0.0, 1.2, 1.3)),
        ("text", (0.0, 2.2, 2.4)),
    )
    twin_share: float = 0.3
    speaker_sd: float = 0.15
    speaker_feat_sd: float = 0.15
    frame_sd: float = 1.0
    p_cue: float = 0.7
    beta: float = 4.0
    zero_video_fraction: float = 0.01
    dev_fraction: float = 0.15
    min_per_class_per_session: int = 3


PRESETS: dict[str, SyntheticPreset] = {
    "small": SyntheticPreset(n_utterances=1100, audio=(50, 20), video=(12, 32), text=(20, 32), vocab=300),
    "paper": SyntheticPreset(n_utterances=sum(IEMOCAP7_COUNTS), audio=(1000, 120), video=(32, 2048),
                             text=(128, 300), vocab=3000),
}


def _session_counts(preset: SyntheticPreset) -> np.ndarray:
    """int [5, 7] utterances per session and class in IEMOCAP's proportions (largest remainder)."""
    props = np.asarray(IEMOCAP7_COUNTS, dtype=float) / sum(IEMOCAP7_COUNTS)
    per_session = preset.n_utterances / 5
    exact = props * per_session
    base = np.floor(exact).astype(int)
    rest = int(round(per_session)) - base.sum()
    base[np.argsort(-(exact - base))[:rest]] += 1
    base = np.maximum(base, preset.min_per_class_per_session)
    return np.tile(base, (5, 1))


@dataclass
class _Plan:
    labels: np.ndarray  # [N]
    session: np.ndarray  # [N] 1..5
    speaker: np.ndarray  # [N] 0..9
    ids: list[str]
    audio_len: np.ndarray
    video_len: np.ndarray
    text_ids: np.ndarray  # [N, T_text]
    z: dict[str, np.ndarray]  # modality -> [N, LATENT_DIM]
    proj: dict[str, np.ndarray]  # modality -> [F, LATENT_DIM]
    spk_feat: dict[str, np.ndarray]  # modality -> [10, F]
    embedding: np.ndarray  # [V, F_text]
    vocab: list[str]


def _centroids(w: tuple[float, float, float], twin_share: float) -> np.ndarray:
    """[7, LATENT_DIM] class centroids of one modality."""
    a, v, i = w
    eye = np.eye(len(IEMOCAP7))
    identity = (1.0 - twin_share) * eye + twin_share * eye[AROUSAL_TWIN]
    return np.concatenate([a * AROUSAL[:, None], v * VALENCE[:, None], i * identity], axis=1)


def _plan(preset: SyntheticPreset, seed: int) -> _Plan:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    counts = _session_counts(preset)
    labels, session = [], []
    for s in range(5):
        for c in range(len(IEMOCAP7)):
            labels += [c] * int(counts[s, c])
            session += [s + 1] * int(counts[s, c])
    labels_a = np.asarray(labels, dtype=np.int64)
    session_a = np.asarray(session, dtype=np.int64)
    n = labels_a.size
    # Shuffle within each session so the file order does not follow the class.
    order = np.concatenate([rng.permutation(np.flatnonzero(session_a == s)) for s in range(1, 6)])
    labels_a, session_a = labels_a[order], session_a[order]
    gender = rng.integers(0, 2, n)
    speaker = (session_a - 1) * 2 + gender
    ids = [f"Ses{s:02d}{'FM'[g]}_syn_{'FM'[g]}{i:04d}" for i, (s, g) in enumerate(zip(session_a, gender))]

    duration = np.clip(np.exp(rng.normal(np.log(4.0), 0.5, n)), 0.8, 15.0)  # seconds
    frac = np.minimum(duration / 10.0, 1.0)
    t_a, t_v, t_t = preset.audio[0], preset.video[0], preset.text[0]
    audio_len = np.clip(np.ceil(frac * t_a), 1, t_a).astype(np.int64)
    video_len = np.clip(np.ceil(frac * t_v), 1, t_v).astype(np.int64)
    rarest = int(np.argmin(IEMOCAP7_COUNTS))
    candidates = np.flatnonzero(labels_a != rarest)
    n_zero = int(round(preset.zero_video_fraction * n))
    video_len[rng.choice(candidates, size=n_zero, replace=False)] = 0
    text_len = np.clip(np.round(duration * 2.5), 1, t_t).astype(np.int64)

    weights = dict(preset.weights)
    z: dict[str, np.ndarray] = {}
    for m in ("audio", "video", "text"):
        spk = rng.normal(0.0, preset.speaker_sd, (10, LATENT_DIM))
        centroids = _centroids(weights[m], preset.twin_share)
        z[m] = centroids[labels_a] + spk[speaker] + rng.normal(0.0, 1.0, (n, LATENT_DIM))

    feat = {"audio": preset.audio[1], "video": preset.video[1], "prosody": preset.prosody_dim}
    proj = {m: rng.normal(0.0, 1.0 / math.sqrt(LATENT_DIM), (f, LATENT_DIM)) for m, f in feat.items()}
    spk_feat = {m: rng.normal(0.0, preset.speaker_feat_sd, (10, f)) for m, f in feat.items()}

    # Text: vocabulary = pad, unk, fillers, cue words with latent directions u_w.
    f_t, v = preset.text[1], preset.vocab
    n_cue = v // 3
    n_fill = v - 2 - n_cue
    u = rng.normal(0.0, 1.0, (n_cue, LATENT_DIM))
    # Fixed-norm directions: with free norms a few long cue words dominate and how much
    # text tells would vary a lot between data seeds.
    u *= math.sqrt(LATENT_DIM) / np.linalg.norm(u, axis=1, keepdims=True)
    q = rng.normal(0.0, 1.0 / math.sqrt(LATENT_DIM), (f_t, LATENT_DIM))
    emb = np.zeros((v, f_t))
    emb[1] = rng.normal(0.0, 0.3, f_t)
    emb[2 : 2 + n_fill] = rng.normal(0.0, 0.5, (n_fill, f_t))
    emb[2 + n_fill :] = u @ q.T + rng.normal(0.0, 0.1, (n_cue, f_t))
    vocab = ["<pad>", "<unk>"] + [f"filler{i:04d}" for i in range(n_fill)]
    vocab += [f"cue{i:04d}" for i in range(n_cue)]

    logits = preset.beta * z["text"] @ u.T / math.sqrt(LATENT_DIM)  # [N, n_cue]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    r = rng.random((n, t_t))
    cue_pick = np.stack([np.searchsorted(cdf[i], r[i]) for i in range(n)]).reshape(n, t_t)
    cue_pick = np.minimum(cue_pick, n_cue - 1)
    is_cue = rng.random((n, t_t)) < preset.p_cue
    fill_pick = rng.integers(0, n_fill, (n, t_t))
    tok = np.where(is_cue, 2 + n_fill + cue_pick, 2 + fill_pick)
    valid = np.arange(t_t)[None, :] < text_len[:, None]
    text_ids = np.where(valid, tok, 0).astype(np.int64)

    return _Plan(labels_a, session_a, speaker, ids, audio_len, video_len, text_ids, z, proj, spk_feat,
                 emb.astype(np.float32), vocab)


def _gen_rows(plan: _Plan, preset: SyntheticPreset, seed: int, modality: str, rows: np.ndarray) -> np.ndarray:
    """float32 [len(rows), T, F] frames (or [len(rows), P] prosody), from per-utterance seeds."""
    if modality == "prosody":
        out = np.empty((len(rows), preset.prosody_dim), dtype=np.float32)
    else:
        t, f = preset.audio if modality == "audio" else preset.video
        out = np.zeros((len(rows), t, f), dtype=np.float32)
    stream = {"audio": _STREAM_AUDIO, "video": _STREAM_VIDEO, "prosody": _STREAM_PROSODY}[modality]
    zkey = "video" if modality == "video" else "audio"
    for j, i in enumerate(rows):
        rng = np.random.default_rng(np.random.SeedSequence([seed, stream, int(i)]))
        mean = plan.proj[modality] @ plan.z[zkey][i] + plan.spk_feat[modality][plan.speaker[i]]
        if modality == "prosody":
            out[j] = mean + rng.normal(0.0, 0.5, mean.shape)
            continue
        length = int(plan.audio_len[i] if modality == "audio" else plan.video_len[i])
        out[j, :length] = mean + rng.normal(0.0, preset.frame_sd, (length, mean.size))
    return out


def _fold_rows(plan: _Plan, preset: SyntheticPreset, seed: int, k: int) -> dict[str, np.ndarray]:
    """Row numbers of train / dev / test for fold ``k`` (test = session k)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 100 + k]))
    test = np.flatnonzero(plan.session == k)
    pool = np.flatnonzero(plan.session != k)
    dev = []
    for c in range(len(IEMOCAP7)):
        rows_c = pool[plan.labels[pool] == c]
        n_dev = max(1, int(round(preset.dev_fraction * rows_c.size))) if rows_c.size > 1 else 0
        dev.append(rng.choice(rows_c, size=n_dev, replace=False))
    dev_a = np.sort(np.concatenate(dev))
    train = np.setdiff1d(pool, dev_a)
    return {"train": train, "dev": dev_a, "test": test}


def _write_big(path: Path, plan: _Plan, preset: SyntheticPreset, seed: int, modality: str,
               rows: np.ndarray, cache: dict[str, np.ndarray]) -> None:
    if modality in cache:
        writer.save_array(path, cache[modality][rows])
        return
    t, f = preset.audio if modality == "audio" else preset.video
    step = max(1, (64 * 2**20) // (t * f * 4))
    with writer.open_array(path, (len(rows), t, f), np.float32) as mm:
        for s in range(0, len(rows), step):
            mm[s : s + step] = _gen_rows(plan, preset, seed, modality, rows[s : s + step])


def make_synthetic(
    out: str | Path,
    preset: str = "small",
    seed: int = 0,
    n_folds: int = 5,
    n_utterances: int | None = None,
) -> Path:
    """Write a synthetic IEMOCAP-shaped data root and return its path.

    Args:
        out: the data root to create (``fold01 .. foldK``, ``classes.txt``, ``vocab.txt``,
            ``synthetic.json``); existing files of the same names are replaced.
        preset: a name in :data:`PRESETS`: ``small`` (small shapes and ~1,100 utterances:
            a training run takes seconds) or ``paper`` (the paper's shapes 1000x120 /
            32x2048 / 128x300 and IEMOCAP's 7,487 utterances: ~5.6 GB per fold, written in
            chunks).
        seed: the data depend only on ``seed``, the preset and ``n_utterances``.
        n_folds: folds to write, 1..5 (fold k tests on session k).
        n_utterances: override the preset's total (e.g. a small ``paper``-shaped set for tests).
    """
    if preset not in PRESETS:
        raise ConfigError(f"synthetic preset {preset!r} is not one of {', '.join(PRESETS)}")
    if not 1 <= n_folds <= 5:
        raise ConfigError(f"--folds must be between 1 and 5 (one per session), got {n_folds}")
    p = PRESETS[preset]
    if n_utterances is not None:
        if n_utterances < 5 * len(IEMOCAP7) * p.min_per_class_per_session:
            raise ConfigError(f"n_utterances={n_utterances} is too small: need at least "
                              f"{5 * len(IEMOCAP7) * p.min_per_class_per_session}")
        p = replace(p, n_utterances=n_utterances)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    plan = _plan(p, seed)
    all_rows = np.arange(plan.labels.size)
    cache: dict[str, np.ndarray] = {}
    for m, (t, f) in (("audio", p.audio), ("video", p.video)):
        if all_rows.size * t * f * 4 <= _IN_MEMORY_BYTES:
            cache[m] = _gen_rows(plan, p, seed, m, all_rows)
    prosody = _gen_rows(plan, p, seed, "prosody", all_rows)

    writer.write_classes(root, IEMOCAP7.names)
    writer.save_text(root / layout.VOCAB_FILE, plan.vocab)
    for k in range(1, n_folds + 1):
        fold = root / layout.fold_name(k)
        writer.write_embedding(fold, plan.embedding)
        for split, rows in _fold_rows(plan, p, seed, k).items():
            writer.write_split(
                fold,
                split,
                {
                    "label": plan.labels[rows],
                    "audio_seqN": plan.audio_len[rows],
                    "audio_prosody": prosody[rows],
                    "video_seqN": plan.video_len[rows],
                    "text_ids": plan.text_ids[rows],
                },
                [plan.ids[i] for i in rows],
            )
            for m in ("audio", "video"):
                _write_big(fold / layout.split_file(split, m), plan, p, seed, m, rows, cache)
    meta = {"generator": "selfcross.synthetic.generator", "preset": preset, "seed": seed, "n_folds": n_folds,
            "params": asdict(p), "class_names": list(IEMOCAP7.names),
            "dev": f"stratified random {p.dev_fraction:.0%} of each class of the training sessions"}
    writer.save_text(root / "synthetic.json", json.dumps(meta, indent=2, sort_keys=True).splitlines())
    return root
