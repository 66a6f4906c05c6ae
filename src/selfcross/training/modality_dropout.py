"""Modality dropout: training batches in which whole modalities of some utterances are missing.

Why: a model trained on complete inputs has never seen a silent microphone or an empty
transcript; ``selfcross evaluate --perturb drop:m`` shows how much that costs. With
``TrainConfig.modality_dropout = p`` every modality of every training utterance is dropped
with probability ``p``, exactly as ``drop:m`` drops it at test time (frames zeroed, length
0), except that each utterance keeps at least one modality. Off (``p = 0``) in every preset;
at 0 no random numbers are drawn, so training is bit-identical to a run without the switch.
"""

from __future__ import annotations

import torch


def drop_modalities(
    inputs: dict[str, torch.Tensor],
    lengths: dict[str, torch.Tensor],
    p: float,
    generator: torch.Generator,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A batch with each (utterance, modality) dropped with probability ``p``.

    ``inputs[m]`` is ``[B, T, ...]`` (word ids ``[B, T]`` too), ``lengths[m]`` ``[B]``; draws
    come from ``generator`` (CPU), so the drops depend only on its seed and the batch order.
    An utterance whose draws drop every modality keeps one of them, chosen uniformly.
    """
    mods = list(inputs)
    batch = next(iter(inputs.values())).shape[0]
    drop = torch.rand(batch, len(mods), generator=generator) < p
    rescue = torch.randint(len(mods), (batch,), generator=generator)
    everything = drop.all(dim=1)
    drop[everything, rescue[everything]] = False
    out_x, out_len = dict(inputs), dict(lengths)
    for j, m in enumerate(mods):
        keep = (~drop[:, j]).to(inputs[m].device)
        # one keep flag per utterance, whatever the rank ([B, T, F] frames, [B, T] word ids)
        out_x[m] = inputs[m] * keep.view(-1, *[1] * (inputs[m].dim() - 1)).to(inputs[m].dtype)
        if m in lengths:
            out_len[m] = lengths[m] * keep.to(lengths[m].dtype)
    return out_x, out_len
