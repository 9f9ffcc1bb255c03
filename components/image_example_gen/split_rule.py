"""The split rule: which split each accepted image goes to, by near-duplicate group.

Near-duplicate groups are the connected components of the images whose fingerprints are
within data.near_duplicate_distance (near_duplicates.py), together with the images of
earlier runs or spans listed in prior fingerprint indexes. Placement, in this order:
  1. an image placed earlier (same sha256 in a prior index) keeps its split;
  2. an image whose group holds images placed earlier takes that group's split;
  3. when the earlier images of its group lie in both splits, the new images that link
     them (connected to both through new images only) are rejected
     (`near_duplicate_across_splits`): wherever they went, a twin of an eval photo
     would be in train;
  4. otherwise the whole group goes to the split chosen by its anchor, the member with
     the smallest sha256: bucket int(anchor, 16) mod (train_buckets + eval_buckets),
     train below train_buckets. Content, not path: a rename or a move does not move it.
Before grouping, a new image within the distance of an image under another label is a
`conflicting_near_duplicate`: rejected (and out of the groups), warned about or kept,
per data.conflicting_near_duplicates.

The index: fingerprints.tsv, one row per ingested image (image_id, sha256, fingerprint
as 16 hex digits, group = the anchor's sha256, split, label), written in the Examples
artifact's root. Prior indexes are files of that form (custom_config key
`prior_fingerprint_indexes`, a list of URIs).
"""
from __future__ import annotations

import collections
import csv
import io
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set

import numpy as np
from tfx.dsl.io import fileio

from components.image_example_gen import fingerprint as fp
from components.image_example_gen import near_duplicates
from trainer import features

INDEX_FILE = "fingerprints.tsv"
INDEX_COLUMNS = ("image_id", "sha256", "fingerprint", "group", "split", "label")
# custom_config key: URIs of the fingerprints.tsv of earlier runs or spans.
PRIOR_INDEXES_KEY = "prior_fingerprint_indexes"

REASON_NEAR_DUPLICATE_ACROSS_SPLITS = "near_duplicate_across_splits"
REASON_CONFLICTING_NEAR_DUPLICATE = "conflicting_near_duplicate"

CONFLICT_REJECT = "reject"
CONFLICT_KEEP = "keep"
CONFLICT_WARN = "warn"
CONFLICT_ACTIONS = (CONFLICT_REJECT, CONFLICT_KEEP, CONFLICT_WARN)
SPLITS = (features.TRAIN_SPLIT, features.EVAL_SPLIT)
_NAMED = 3  # images named in a rejection's detail


@dataclass(frozen=True)
class Member:
    """What the rule needs of an accepted image (a few dozen bytes, not the image)."""
    image_id: str
    sha256: str
    fingerprint: int  # unsigned 64-bit
    label: str


@dataclass(frozen=True)
class IndexRow:
    image_id: str
    sha256: str
    fingerprint: int
    group: str
    split: str
    label: str


@dataclass(frozen=True)
class Settings:
    max_distance: int
    train_buckets: int
    eval_buckets: int
    conflicting_action: str


@dataclass(frozen=True)
class Placement:
    """An image's split and group, or why it is rejected (reason, detail)."""
    split: str = ""
    group: str = ""
    reason: str = ""
    detail: str = ""


@dataclass
class Plan:
    placements: Dict[str, Placement] = field(default_factory=dict)  # by image_id
    rows: List[IndexRow] = field(default_factory=list)  # the index of this run
    groups: int = 0  # groups of more than one ingested image
    largest_group: int = 0
    warnings: List[Dict[str, str]] = field(default_factory=list)


def anchor_split(anchor_sha256: str, train_buckets: int, eval_buckets: int) -> str:
    bucket = int(anchor_sha256, 16) % (train_buckets + eval_buckets)
    return features.TRAIN_SPLIT if bucket < train_buckets else features.EVAL_SPLIT


# -- the index file -------------------------------------------------------------------------
def format_index(rows: Iterable[IndexRow]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t", lineterminator="\n")
    writer.writerow(INDEX_COLUMNS)
    writer.writerows((r.image_id, r.sha256, fp.to_hex(r.fingerprint), r.group, r.split,
                      r.label) for r in sorted(rows, key=lambda r: r.image_id))
    return text.getvalue()


def parse_index(text: str, where: str) -> List[IndexRow]:
    """Rows of a fingerprints.tsv; ValueError naming the file and line otherwise."""
    reader = csv.reader(io.StringIO(text), delimiter="\t")
    header = tuple(next(reader, ()))
    if header != INDEX_COLUMNS:
        raise ValueError(f"fingerprint index {where}: the header must be "
                         f"{'<tab>'.join(INDEX_COLUMNS)}, got {'<tab>'.join(header)!r}")
    rows = []
    for values in reader:
        line = reader.line_num
        if len(values) != len(INDEX_COLUMNS):
            raise ValueError(f"fingerprint index {where}:{line}: expected "
                             f"{len(INDEX_COLUMNS)} tab-separated columns, got {len(values)}")
        image_id, sha256, fingerprint, group, split, label = values
        if split not in SPLITS:
            raise ValueError(f"fingerprint index {where}:{line}: split must be one of "
                             f"{list(SPLITS)}, got {split!r}")
        try:
            value = fp.from_hex(fingerprint)
        except ValueError as e:
            raise ValueError(f"fingerprint index {where}:{line}: {e}") from None
        rows.append(IndexRow(image_id, sha256, value, group, split, label))
    return rows


def read_index(uri: str) -> List[IndexRow]:
    if not fileio.exists(uri):
        raise ValueError(f"prior fingerprint index not found: {uri}")
    with fileio.open(uri, "r") as f:
        return parse_index(f.read(), uri)


def write_index(rows: Iterable[IndexRow], directory: str) -> None:
    """fingerprints.tsv into `directory`, written to a temporary name and renamed."""
    fileio.makedirs(directory)
    path = f"{directory.rstrip('/')}/{INDEX_FILE}"
    with fileio.open(path + ".tmp", "w") as f:
        f.write(format_index(rows))
    fileio.rename(path + ".tmp", path, overwrite=True)


# -- the rule -------------------------------------------------------------------------------
@dataclass
class _Node:
    image_id: str
    sha256: str
    fingerprint: int
    label: str
    fixed_split: str  # placed earlier ("" for a new image)
    new: bool  # ingested in this run


def _nodes(members: Sequence[Member], prior: Sequence[IndexRow]) -> List[_Node]:
    placed: Dict[str, str] = {}
    for row in prior:
        placed.setdefault(row.sha256, row.split)  # the first index naming an image wins
    nodes = [_Node(m.image_id, m.sha256, m.fingerprint, m.label, placed.get(m.sha256, ""), True)
             for m in sorted(members, key=lambda m: m.image_id)]
    nodes += [_Node(r.image_id, r.sha256, r.fingerprint, r.label, r.split, False) for r in prior]
    return nodes


def _named(nodes: Sequence[_Node], ids: Iterable[int]) -> str:
    ids = sorted(ids, key=lambda i: nodes[i].image_id)
    text = ", ".join(f"{nodes[i].image_id} ({nodes[i].label}"
                     f"{'' if nodes[i].new else ', placed earlier'})" for i in ids[:_NAMED])
    return text + (f" and {len(ids) - _NAMED} more" if len(ids) > _NAMED else "")


def plan_splits(members: Sequence[Member], prior: Sequence[IndexRow],
                settings: Settings) -> Plan:
    """The placement of every member (this run's accepted images) by the rule above."""
    nodes = _nodes(members, prior)
    pairs = near_duplicates.near_pairs([n.fingerprint for n in nodes], settings.max_distance)
    plan = Plan()
    rejected: Set[int] = set()

    label_ids = np.unique([n.label for n in nodes], return_inverse=True)[1] if nodes else \
        np.zeros(0, np.int64)
    across = pairs[label_ids[pairs[:, 0]] != label_ids[pairs[:, 1]]].tolist()
    other_labels: Dict[int, List[int]] = collections.defaultdict(list)
    for a, b in across:
        other_labels[a].append(b)
        other_labels[b].append(a)
    for i in sorted(other_labels, key=lambda i: nodes[i].image_id):
        node = nodes[i]
        if not node.new:
            continue
        detail = f"near-duplicate of {_named(nodes, other_labels[i])}: labels disagree"
        if settings.conflicting_action == CONFLICT_REJECT:
            rejected.add(i)
            plan.placements[node.image_id] = Placement(
                reason=REASON_CONFLICTING_NEAR_DUPLICATE, detail=detail)
        elif settings.conflicting_action == CONFLICT_WARN:
            plan.warnings.append({"file": node.image_id,
                                  "reason": REASON_CONFLICTING_NEAR_DUPLICATE,
                                  "detail": detail})

    def kept_pairs() -> np.ndarray:
        if not rejected:
            return pairs
        out = np.array(sorted(rejected), dtype=np.int64)
        return pairs[~(np.isin(pairs[:, 0], out) | np.isin(pairs[:, 1], out))]

    roots = near_duplicates.components(len(nodes), kept_pairs())
    linked = _reject_bridges(nodes, kept_pairs(), roots, rejected, plan)
    roots = near_duplicates.components(len(nodes), kept_pairs())
    _place(nodes, roots, rejected, linked, settings, plan)
    return plan


def _reject_bridges(nodes: List[_Node], pairs: np.ndarray, roots: np.ndarray,
                    rejected: Set[int], plan: Plan) -> Dict[int, str]:
    """Rule 3: in a group holding earlier images of both splits, the new images
    connected (through new images) to both are rejected; the others take the split of
    the earlier images they are connected to, returned by node."""
    fixed_splits: Dict[int, Set[str]] = collections.defaultdict(set)
    for i, node in enumerate(nodes):
        if node.fixed_split and i not in rejected:
            fixed_splits[int(roots[i])].add(node.fixed_split)
    mixed = {root for root, splits in fixed_splits.items() if len(splits) > 1}
    linked: Dict[int, str] = {}
    if not mixed:
        return linked
    neighbours: Dict[int, Set[int]] = collections.defaultdict(set)
    for a, b in pairs[np.isin(roots[pairs[:, 0]], list(mixed))].tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    free = [i for i, n in enumerate(nodes)
            if int(roots[i]) in mixed and not n.fixed_split and i not in rejected]
    free_set = set(free)
    local = {i: k for k, i in enumerate(free)}
    inner = [(local[a], local[b]) for a in free for b in neighbours[a]
             if b in free_set and a < b]
    pieces = near_duplicates.components(len(free), np.array(inner, np.int64).reshape(-1, 2))
    by_piece: Dict[int, List[int]] = collections.defaultdict(list)
    for i in free:
        by_piece[int(pieces[local[i]])].append(i)
    for piece in by_piece.values():
        touched = {j for i in piece for j in neighbours[i]
                   if nodes[j].fixed_split and j not in rejected}
        splits = {nodes[j].fixed_split for j in touched}
        if len(splits) < 2:
            linked.update((i, split) for i in piece for split in splits)
            continue
        examples = [min((j for j in touched if nodes[j].fixed_split == s),
                        key=lambda j: nodes[j].image_id) for s in SPLITS]
        for i in piece:
            rejected.add(i)
            plan.placements[nodes[i].image_id] = Placement(
                reason=REASON_NEAR_DUPLICATE_ACROSS_SPLITS,
                detail=f"links near-duplicates placed in both splits, e.g. "
                       f"{nodes[examples[0]].image_id} (train) and "
                       f"{nodes[examples[1]].image_id} (eval)")
    return linked


def _place(nodes: List[_Node], roots: np.ndarray, rejected: Set[int], linked: Dict[int, str],
           settings: Settings, plan: Plan) -> None:
    """Rules 1, 2 and 4 for every image not rejected; the index rows and group counts."""
    members: Dict[int, List[int]] = collections.defaultdict(list)
    for i in range(len(nodes)):
        if i not in rejected:
            members[int(roots[i])].append(i)
    for group in members.values():
        anchor = min(nodes[i].sha256 for i in group)
        fixed = sorted({nodes[i].fixed_split for i in group if nodes[i].fixed_split})
        group_split: Optional[str] = fixed[0] if len(fixed) == 1 else \
            None if fixed else anchor_split(anchor, settings.train_buckets, settings.eval_buckets)
        ingested = [i for i in group if nodes[i].new]
        for i in ingested:
            node = nodes[i]
            split = node.fixed_split or group_split or linked[i]
            plan.placements[node.image_id] = Placement(split=split, group=anchor)
            plan.rows.append(IndexRow(node.image_id, node.sha256, node.fingerprint, anchor,
                                      split, node.label))
        if len(ingested) > 1:
            plan.groups += 1
            plan.largest_group = max(plan.largest_group, len(ingested))

