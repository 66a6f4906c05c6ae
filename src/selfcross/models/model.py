"""The fusion model: encoders -> attention -> temporal means -> pooling -> linear head.

One class covers every model of the paper (and the combinations it infers): any non-empty
modality set, attention ``self`` / ``cross`` / ``self+cross``, pooling ``stat`` / ``concat`` /
``mean``. With the ``paper`` switches it computes exactly what the authors' ``TVAModel_Self``
and ``TVAModel_Cross`` compute (checked against their outputs in ``tests/test_compat.py``).

Shapes (paper values): audio ``[B, 1000, 120]`` -> conv -> ``[B, 500, 120]`` -> BiGRU ->
``[B, 500, 120]``; video ``[B, 32, 2048]`` -> ``[B, 25, 2048]`` -> ``[B, 25, 120]``; text
``[B, 128, 300]`` -> ``[B, 128, 120]``. Each attention output ``[B, Tq, 120]`` is averaged
over time -> ``[B, 120]``; the ``N`` vectors are stacked ``[B, N, 120]`` and pooled
(``stat``: ``[B, 240]``); head ``Linear(240, 60) -> Linear(60, 7)`` with no non-linearity.
"""

from __future__ import annotations

import torch
from torch import nn

from selfcross.config import ModelConfig
from selfcross.errors import ConfigError, DataError
from selfcross.labels import MODALITIES
from selfcross.models.attention import Attention
from selfcross.models.augment import SpecMask
from selfcross.models.encoders import ModalityEncoder, valid_mask
from selfcross.models.layer_weighting import LayerWeighting
from selfcross.models.pooling import Pooling


def attention_pairs(config: ModelConfig) -> list[tuple[str, str, str]]:
    """``(name, target, source)`` of every attention block, in canonical (stacking) order.

    Self blocks ``"self_<m>"`` (target = source = m) in ``MODALITIES`` order, then cross
    blocks ``"<target>_from_<source>"`` for target in ``MODALITIES``, source in ``MODALITIES``.
    """
    mods = [m for m in MODALITIES if m in config.modalities]
    pairs: list[tuple[str, str, str]] = []
    if config.kind in ("self", "self+cross"):
        pairs += [(f"self_{m}", m, m) for m in mods]
    if config.kind in ("cross", "self+cross"):
        pairs += [(f"{t}_from_{s}", t, s) for t in mods for s in mods if s != t]
    return pairs


class FusionModel(nn.Module):
    """Multimodal emotion classifier built from one :class:`~selfcross.config.ModelConfig`.

    Sub-modules: ``layer_mixers`` (``ModuleDict`` modality -> :class:`LayerWeighting`, only
    for inputs of stacked encoder layers ``[B, T, L, F]``; empty otherwise),
    ``encoders`` (``ModuleDict`` modality -> :class:`ModalityEncoder`),
    ``attentions`` (``ModuleDict`` name -> :class:`Attention`, see :func:`attention_pairs`),
    ``pooling`` (:class:`Pooling`), ``head`` (``Sequential(Linear, Linear)``),
    ``word_vectors`` (``nn.Embedding`` with ``tune_word_vectors``; else ``None``: text then
    arrives as vectors).

    Inputs are cast to the model's floating dtype (so a float64 model accepts float32
    arrays, as the authors' training does); they must already be on the model's device.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.modalities: tuple[str, ...] = tuple(config.modalities)
        self.layer_mixers = nn.ModuleDict(
            {m: LayerWeighting(config.shapes[m].layers) for m in self.modalities if config.shapes[m].layers}
        )
        self.encoders = nn.ModuleDict()
        for m in self.modalities:
            shape = config.shapes[m]
            self.encoders[m] = ModalityEncoder(
                shape.seq_len,
                shape.feat_dim,
                shape.mixed_len,
                config.hidden,
                input_dropout=config.text_dropout if m == "text" else 0.0,
                mask_padding=config.mask_padding,
                packed_gru=config.packed_gru,
                time_mixing=config.time_mixing,
                pool_stride=config.stride_for(shape.seq_len),
                spec_mask=SpecMask(
                    config.spec_time_masks,
                    config.spec_width_for(shape.seq_len),
                    config.spec_feat_masks,
                    config.spec_feat_width,
                )
                if m == "audio"
                else None,
                word_dropout=config.word_dropout if m == "text" else 0.0,
            )
        self.pairs = attention_pairs(config)
        self.attentions = nn.ModuleDict(
            {name: Attention(config.embed_dim, config.heads, config.attn_dropout) for name, *_ in self.pairs}
        )
        self.pooling = Pooling(config.pooling, len(self.pairs), config.embed_dim)
        self.head = nn.Sequential(
            nn.Linear(self.pooling.out_dim, config.head_hidden),
            nn.Linear(config.head_hidden, config.n_classes),
        )
        # built last, so that every other weight draws the same random numbers as without it
        self.word_vectors = _word_vector_table(config)

    def load_word_vectors(self, table: torch.Tensor) -> None:
        """Copy ``table [vocab_size, feat_dim]`` into the model's word vectors (row 0 stays zero)."""
        if self.word_vectors is None:
            raise ConfigError("this model has no word-vector table of its own (tune_word_vectors is off)")
        if tuple(table.shape) != tuple(self.word_vectors.weight.shape):
            raise DataError(None, f"word-vector table has shape {tuple(table.shape)}; the model's is "
                                  f"{tuple(self.word_vectors.weight.shape)}")
        with torch.no_grad():
            self.word_vectors.weight.copy_(table)
            self.word_vectors.weight[0].zero_()

    # ------------------------------------------------------------------ inputs
    def _check_inputs(
        self, inputs: dict[str, torch.Tensor | None], lengths: dict[str, torch.Tensor] | None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor | None]]:
        given = {m: x for m, x in inputs.items() if x is not None}
        missing = [m for m in self.modalities if m not in given]
        extra = [m for m in given if m not in self.modalities]
        if missing:
            raise ConfigError(
                f"the model uses {', '.join(self.modalities)} but got no {', '.join(missing)} input"
            )
        if extra:
            raise ConfigError(
                f"the model uses only {', '.join(self.modalities)}; unexpected input: {', '.join(extra)}"
            )
        first = next(self.parameters())
        dtype, device = first.dtype, first.device
        batch: int | None = None
        xs: dict[str, torch.Tensor] = {}
        for m in self.modalities:
            x = given[m]
            if not isinstance(x, torch.Tensor):
                raise DataError(None, f"{m} input must be a torch.Tensor, got {type(x).__name__}")
            shape = self.config.shapes[m]
            ids = m == "text" and self.word_vectors is not None
            want = (shape.seq_len,) if ids else (shape.seq_len, *shape.frame_shape)
            if ids:
                self._check_word_ids(x)
            if tuple(x.shape[1:]) != want:
                raise DataError(
                    None,
                    f"{m} input has shape {tuple(x.shape)}; expected [batch, {', '.join(map(str, want))}]",
                )
            if x.device != device:
                raise DataError(None, f"{m} input is on {x.device} but the model is on {device}")
            if batch is None:
                batch = x.shape[0]
            elif x.shape[0] != batch:
                raise DataError(None, f"{m} input has batch size {x.shape[0]}, other inputs have {batch}")
            xs[m] = x if (ids or x.dtype == dtype) else x.to(dtype)
        lens: dict[str, torch.Tensor | None] = {}
        for m in self.modalities:
            ln = None if lengths is None else lengths.get(m)
            uses = self.config.uses_lengths(m)
            if ln is None:
                if uses:
                    raise ConfigError(
                        f"the improved switches (mask_padding/packed_gru/masked_mean) need the valid "
                        f"length of every {m} sequence: pass lengths={{'{m}': LongTensor[batch]}}"
                    )
                lens[m] = None
                continue
            ln = torch.as_tensor(ln, device=xs[m].device)
            steps = self.config.shapes[m].seq_len
            if ln.shape != (batch,) or ln.dtype.is_floating_point:
                raise DataError(None, f"{m} lengths must be an integer tensor of shape [{batch}]")
            if bool((ln < 0).any()) or bool((ln > steps).any()):
                raise DataError(None, f"{m} lengths must lie in 0..{steps}")
            lens[m] = ln.long() if uses else None
        return xs, lens

    def _check_word_ids(self, x: torch.Tensor) -> None:
        """Text must be word ids in ``0 .. vocab_size - 1`` when the model owns the word vectors."""
        assert self.word_vectors is not None
        if x.dtype.is_floating_point or x.dtype == torch.bool or x.dim() != 2:
            raise DataError(None, f"text input must be word ids [batch, T] (integers) because the model "
                                  f"tunes its word vectors; got {x.dtype} of shape {tuple(x.shape)}")
        rows = self.word_vectors.num_embeddings
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= rows):
            raise DataError(None, f"text word ids must lie in 0..{rows - 1} (the model's word-vector rows)")

    # ----------------------------------------------------------------- forward
    def fused(
        self,
        audio: torch.Tensor | None = None,
        video: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        lengths: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The head's input ``[B, pool_dim]`` (``[B, 2E]`` for ``stat``): for parity checks."""
        encoded, key_masks, mean_masks = self.attention_inputs(audio, video, text, lengths)
        vectors = []
        for name, target, source in self.pairs:
            attention = self.attentions[name]
            pooled = attention.pooled(encoded[target], encoded[source], key_masks[source], mean_masks[target])
            vectors.append(pooled)
        return self.pooling(torch.stack(vectors, dim=1))

    def attention_inputs(
        self,
        audio: torch.Tensor | None = None,
        video: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        lengths: dict[str, torch.Tensor] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor | None], dict[str, torch.Tensor | None]]:
        """What every attention block sees: ``(encoded, key_masks, mean_masks)`` per modality.

        ``encoded[m]`` is the encoder output ``[B, T', E]``; ``key_masks[m]`` (``True`` = ignore)
        and ``mean_masks[m]`` (``True`` = valid query) are ``None`` unless a switch uses them.
        """
        xs, lens = self._check_inputs({"audio": audio, "video": video, "text": text}, lengths)
        cfg = self.config
        if self.word_vectors is not None:
            xs["text"] = self.word_vectors(xs["text"])
        for m, mixer in self.layer_mixers.items():
            xs[m] = mixer(xs[m])
        encoded = {m: self.encoders[m](xs[m], lens[m]) for m in self.modalities}
        # valid-step masks exist only where time is not mixed and a switch asks for them
        key_masks: dict[str, torch.Tensor | None] = {}
        mean_masks: dict[str, torch.Tensor | None] = {}
        for m in self.modalities:
            ln = lens[m]
            keep = None
            if ln is not None and not self.config.mixes_time(m):
                # an empty sequence keeps its first step so that softmax and means stay defined
                keep = valid_mask(self.encoders[m].out_lengths(ln).clamp(min=1), encoded[m].shape[1])
            key_masks[m] = ~keep if (keep is not None and cfg.mask_padding) else None
            mean_masks[m] = keep if (keep is not None and cfg.masked_mean) else None
        return encoded, key_masks, mean_masks

    def forward(
        self,
        audio: torch.Tensor | None = None,
        video: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        lengths: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, n_classes]`` from ``[B, T, F]`` inputs of the model's modalities.

        Args:
            audio, video, text: inputs for exactly the modalities of the model; text is word
                ids ``LongTensor [B, T]`` (0 = padding) when the model tunes its word vectors.
            lengths: modality -> ``LongTensor [B]`` of valid steps; needed only when an
                ``improved`` switch uses that modality's lengths.

        Raises:
            ConfigError: a needed modality (or needed lengths) is missing, or an unused one given.
            DataError: an input has the wrong shape, or lengths are out of range.
        """
        return self.head(self.fused(audio=audio, video=video, text=text, lengths=lengths))


def _word_vector_table(config: ModelConfig) -> nn.Embedding | None:
    """The trainable word vectors of ``tune_word_vectors`` (padding row 0 gets no gradient)."""
    if not config.owns_word_vectors:
        return None
    if config.vocab_size is None:
        raise ConfigError("tune_word_vectors needs model.vocab_size (training fills it in from the fold's "
                          "W_embedding.npy)")
    return nn.Embedding(config.vocab_size, config.shapes["text"].feat_dim, padding_idx=0)
