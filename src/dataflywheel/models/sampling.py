"""Picking each row's next token: one prompt in flight (:class:`Row`), argmax for greedy rows,
temperature/top-p sampling (with the row's own seed) for the others, after masking the tokens a row's
tool-name constraint rules out (:mod:`.constrain`); and the end of a row (EOS, stop string, token limit).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from dataflywheel.models.constrain import TokenMask, ToolNameConstraint
from dataflywheel.models.types import SamplingParams

if TYPE_CHECKING:
    import torch

__all__ = ["FinishReason", "Row", "advance", "apply_masks", "pick_among", "pick_tokens"]

FinishReason = Literal["stop", "length"]


@dataclass
class Row:
    """One prompt in flight."""

    index: int
    """Position in the caller's list."""
    tokens: list[int]
    sampling: SamplingParams
    limit: int
    """Tokens it may generate: ``max_tokens``, or less where the model's context ends first."""
    generator: torch.Generator | None = None
    generated: list[int] | None = None
    """Generated tokens, EOS excepted."""
    count: int = 0
    """Generated tokens, an EOS included (the completion tokens)."""
    text: str = ""
    finish: FinishReason | None = None
    constraint: ToolNameConstraint | None = None
    """Masks the tokens of a tool name no tool has (chat requests with tools); None: unconstrained."""


def apply_masks(
    logits: torch.Tensor, masks: Sequence[tuple[int, TokenMask]], greedy: Sequence[bool]
) -> list[tuple[int, tuple[int, ...]]]:
    """Rule out, in place, the tokens each masked row may not pick: banned ids get -inf; with a list of allowed
    ids, a sampled row's other logits get -inf, while a greedy row is returned with its ids, to take the argmax
    of those few logits (:func:`pick_among`: cheaper than writing over the whole vocabulary)."""
    width = logits.shape[-1]
    among: list[tuple[int, tuple[int, ...]]] = []
    for i, mask in masks:
        if mask.allow and greedy[i]:
            ids = tuple(t for t in mask.ids if t < width)
            if ids:
                among.append((i, ids))
            continue
        tensor = mask.tensor(logits.device, width)
        if not len(tensor):  # nothing it may pick: better unconstrained than token 0
            continue
        row = logits[i]
        if not mask.allow:
            row[tensor] = float("-inf")
        else:
            kept = row[tensor]
            row.fill_(float("-inf"))
            row[tensor] = kept
    return among


def pick_among(logits: torch.Tensor, tokens: torch.Tensor, among: Sequence[tuple[int, tuple[int, ...]]]) -> None:
    """Set ``tokens[i]`` to the argmax of row ``i``'s logits over its allowed ids, for all such rows at once
    (ids ascending, padded with the first: ties go to the lowest id, as in a full argmax)."""
    import torch

    size = max(len(ids) for _, ids in among)
    rows = torch.tensor([i for i, _ in among], device=logits.device)
    ids = torch.tensor([[*ids, *[ids[0]] * (size - len(ids))] for _, ids in among], device=logits.device)
    best = logits[rows.unsqueeze(1), ids].argmax(dim=-1, keepdim=True)
    tokens[rows] = ids.gather(1, best).squeeze(1)


def pick_tokens(logits: torch.Tensor, rows: Sequence[Row], fallback: torch.Generator) -> torch.Tensor:
    """Next token of each row: argmax for greedy rows, temperature/top-p sampling for the others (with the
    row's generator, else ``fallback``); the tokens a row's constraint rules out this step are masked first."""
    import torch

    masks = [
        (i, mask)
        for i, row in enumerate(rows)
        if row.constraint is not None and (mask := row.constraint.mask()) is not None
    ]
    among = apply_masks(logits, masks, [r.sampling.temperature <= 0 for r in rows]) if masks else []
    tokens = logits.argmax(dim=-1)
    if among:
        pick_among(logits, tokens, among)
    sampled = [i for i, r in enumerate(rows) if r.sampling.temperature > 0]
    if not sampled:
        return tokens
    index = torch.tensor(sampled, device=logits.device)
    temperature = torch.tensor(
        [rows[i].sampling.temperature for i in sampled], device=logits.device, dtype=torch.float32
    )
    scaled = logits[index].float() / temperature.unsqueeze(1)
    order: torch.Tensor | None = None
    if any(rows[i].sampling.top_p < 1.0 for i in sampled):
        top_p = torch.tensor([rows[i].sampling.top_p for i in sampled], device=logits.device)
        scaled, order = scaled.sort(dim=-1, descending=True)
        probs = scaled.softmax(dim=-1)
        # Drop tokens once the mass before them reaches top_p (the top token always stays).
        drop = (probs.cumsum(dim=-1) - probs) >= top_p.unsqueeze(1)
        probs = probs.masked_fill(drop, 0.0)
    else:
        probs = scaled.softmax(dim=-1)
    for j, i in enumerate(sampled):
        generator = rows[i].generator or fallback
        choice = torch.multinomial(probs[j], 1, generator=generator)[0]
        tokens[i] = choice if order is None else order[j, choice]
    return tokens


def advance(row: Row, token_tensor: torch.Tensor, eos_ids: Collection[int], decode: Callable[[list[int]], str]) -> bool:
    """Append a token to ``row``; True when the row is finished (``eos_ids`` end it, ``decode`` gives the
    text of its tokens)."""
    assert row.generated is not None
    token = int(token_tensor)
    row.count += 1
    if token in eos_ids:
        row.finish = "stop"
        row.text = decode(row.generated)
        return True
    row.generated.append(token)
    if row.constraint is not None:
        row.constraint.feed(token)
    stop = row.sampling.stop
    if stop:
        text = decode(row.generated)
        cut = min((k for k in (text.find(s) for s in stop if s) if k >= 0), default=-1)
        if cut >= 0:
            row.text, row.finish = text[:cut], "stop"
            return True
    if row.count >= row.limit:
        row.text, row.finish = decode(row.generated), "length"
        return True
    return False
