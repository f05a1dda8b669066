"""A video's chain as the tree it is: the root, its extensions, theirs, and so on. Two extensions
of one video are branches, side by side.

The whole tree is read in ONE query, whatever its depth: a recursive CTE walks up from the video
to its root and back down to every descendant, and the rows come with it (``pk IN (WITH
RECURSIVE ...)``). The link to follow is ``parent`` or, where the parent was deleted,
``kept_ancestor`` (the nearest ancestor still there; ``parent_removed_at`` says a link is
missing), so a removed video keeps its place as a "Removed video" node.

Chains run both ways. Every video hangs off its ``parent`` in the tree, but what its clip is to
its parent depends on its kind (``Node.direction``): an extension continues it ("after"), a
reverse extension ends where it begins ("before": it plays BEFORE its parent), an interpolation
runs from it into a second video, ``end_parent`` ("between": parent, interpolation, end). A
node's ``sequence`` is what "Play from the start" plays and ``chain.mp4`` joins, built along its
path from the root:

- the root: itself;
- an extension N of P: P's sequence up to and including P, then N (what came after P in P's
  sequence is another branch's future, not N's);
- a reverse extension N of P: N, then P's sequence from P on (P's own past is another clip's,
  not the one N leads into);
- an interpolation N of P into E: P's sequence up to P, then N, then E's own clip (E's further
  chain belongs to E's page); E removed: up to N.

Which clips that takes also depends on whether an extension's video already holds its parent's:
``LUMA_EXTENSION_CONTAINS_PARENT`` (docs/ARCHITECTURE.md, "Chains"). The same one query brings
the interpolations that END at the video (``Tree.arrivals``: "reached from A by an
interpolation"), with their first sources and every row's end video (``select_related``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models.expressions import RawSQL

from generations.models import Generation, Kind, Status

# Far deeper than any real chain; only a guard against a cycle a broken row could make.
MAX_DEPTH = 1000


# What a video's clip is to its parent's (``Node.direction``).
AFTER, BEFORE, BETWEEN = "after", "before", "between"


@dataclass
class Node:
    """One video of the tree (``gen``), or a removed one (``gen`` None) standing in its place.
    ``end`` is an interpolation's second source (None when it was removed)."""

    gen: Generation | None
    depth: int = 0
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    end: Generation | None = None

    @property
    def direction(self) -> str:
        """``before`` (a reverse extension), ``between`` (an interpolation) or ``after`` (an
        extension, or a removed video: what it was is gone with it); empty for the root."""
        if self.parent is None:
            return ""
        kind = self.gen.kind if self.gen is not None else Kind.EXTEND
        if kind == Kind.REVERSE:
            return BEFORE
        return BETWEEN if kind == Kind.INTERPOLATE else AFTER

    @property
    def end_removed(self) -> bool:
        """An interpolation whose second source was deleted (``end_parent`` set to null)."""
        return self.direction == BETWEEN and self.end is None

    @property
    def step(self) -> int:
        return self.depth + 1

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def path(self) -> list[Node]:
        """The nodes from the root to this one, removed ones included."""
        nodes: list[Node] = []
        node: Node | None = self
        while node is not None:
            nodes.append(node)
            node = node.parent
        nodes.reverse()
        return nodes

    def sequence(self) -> list[Generation | None]:
        """This node's playback order, removed videos as None (module docstring: each kind's
        rule). Built along the path, without recursion."""
        contains = settings.LUMA_EXTENSION_CONTAINS_PARENT
        path = self.path()
        items: list[Generation | None] = [path[0].gen]
        at = 0  # where the node just added is in ``items``
        for node in path[1:]:
            direction = node.direction
            if direction == BEFORE:
                items, at = [node.gen, *items[at:]], 0
            elif direction == BETWEEN:
                items, at = [*items[: at + 1], node.gen, node.end], at + 1
            elif contains and node.gen is not None:
                items, at = [node.gen], 0  # its video holds what came before it
            else:
                items, at = [*items[: at + 1], node.gen], at + 1
        return items

    def clips(self) -> list[Generation]:
        """What plays, in order, for this video: its sequence's videos still there."""
        return [gen for gen in self.sequence() if gen is not None]

    @property
    def several_videos(self) -> bool:
        """Its path or its sequence holds more than this video (else "the chain" is this
        video's own MP4)."""
        if self.gen is None:
            return False
        return sum(n.gen is not None for n in self.path()) > 1 or len(self.clips()) > 1

    @property
    def can_join(self) -> bool:
        """Its path can be downloaded as one MP4: finished, and every clip copied locally."""
        clips = self.clips() if self.gen is not None else []
        return (
            bool(clips)
            and all(c.status == Status.COMPLETED for c in clips)
            and all(c.video_file for c in clips)
        )

    def play_ids(self) -> str:
        """The clips' ids, comma-separated, for ``static/js/chains.js`` (empty: nothing to play)."""
        clips = self.clips() if self.gen is not None else []
        if not clips or any(c.status != Status.COMPLETED for c in clips):
            return ""
        return ",".join(str(c.pk) for c in clips)


@dataclass
class Tree:
    root: Node
    current: Node
    nodes: list[Node]  # every node, depth first, in page order
    # The interpolations that end at ``current`` (in this tree or another), oldest first, each
    # with its first source as ``parent`` (None when removed).
    arrivals: list[Generation] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(1 for n in self.nodes if n.gen is not None)

    @property
    def depth(self) -> int:
        return max(n.step for n in self.nodes)

    @property
    def branches(self) -> int:
        return sum(1 for n in self.nodes if n.is_leaf)

    @property
    def shown(self) -> bool:
        """Worth a section: more than the video itself (a removed parent counts), or an
        interpolation reaches it."""
        return len(self.nodes) > 1 or bool(self.arrivals)

    @property
    def marks(self) -> list[Mark]:
        return marks(self)


def clips_of(path: list[Generation | None]) -> list[Generation]:
    """The videos that make up a path of extensions only, in order. If an extension's video
    already contains its parent's, the last video alone is the whole path; otherwise every video
    of it plays, one after another (a removed link is simply missing: its video is gone).
    ``Node.clips`` is the general rule (reverse extensions and interpolations too)."""
    kept = [gen for gen in path if gen is not None]
    if not kept:
        return []
    if settings.LUMA_EXTENSION_CONTAINS_PARENT:
        return [kept[-1]]
    return kept


def _tree_rows(gen: Generation) -> list[Generation]:
    """Every row of ``gen``'s tree, and the interpolations that end at ``gen``, in one query."""
    table = connection.ops.quote_name(Generation._meta.db_table)
    pk = Generation._meta.pk
    assert pk is not None
    # The table name and the depth are ours, not input; the one input, the id, is a parameter.
    sql = f"""
        WITH RECURSIVE up(id, up_id, n) AS (
            SELECT id, COALESCE(parent_id, kept_ancestor_id), 0 FROM {table} WHERE id = %s
            UNION ALL
            SELECT g.id, COALESCE(g.parent_id, g.kept_ancestor_id), up.n + 1
            FROM {table} g JOIN up ON g.id = up.up_id WHERE up.n < {MAX_DEPTH}
        ),
        top(id) AS (SELECT id FROM up ORDER BY n DESC LIMIT 1),
        down(id, n) AS (
            SELECT id, 0 FROM top
            UNION
            SELECT g.id, down.n + 1 FROM {table} g
            JOIN down ON (g.parent_id = down.id OR g.kept_ancestor_id = down.id)
            WHERE down.n < {MAX_DEPTH}
        )
        SELECT id FROM down
        UNION
        SELECT id FROM {table} WHERE end_parent_id = %s
    """  # noqa: S608
    param = pk.get_db_prep_value(gen.pk, connection)
    rows = RawSQL(sql, [param, param])  # noqa: S611 (see above)
    related = ("created_by", "parent", "end_parent")
    query = Generation.objects.filter(pk__in=rows).select_related(*related)
    return list(query.order_by("created_at", "pk"))


def _up(row: Generation) -> Any:
    return row.parent_id or (row.kept_ancestor_id if row.parent_removed_at else None)


def _in_tree(gen: Generation, rows: dict[Any, Generation]) -> set[Any]:
    """The ids of ``rows`` in ``gen``'s tree: everything under its top (the query also brings
    interpolations into ``gen`` from other trees)."""
    top: Any = gen.pk
    seen = {top}
    while (link := rows[top].parent_id or rows[top].kept_ancestor_id) in rows and link not in seen:
        top = link
        seen.add(top)
    under: dict[Any, list[Any]] = {}
    for pk, row in rows.items():
        under.setdefault(_up(row), []).append(pk)
    found, stack = {top}, [top]
    while stack:
        for child in under.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def tree(gen: Generation) -> Tree:
    """``gen``'s chain as a tree (a single node when it has none), in one query."""
    fetched = {row.pk: row for row in _tree_rows(gen)}
    rows = {**fetched, gen.pk: gen}  # the page's own row, with its annotations
    arrivals = [row for row in fetched.values() if row.end_parent_id == gen.pk]
    kept = _in_tree(gen, rows)
    rows = {pk: row for pk, row in rows.items() if pk in kept}
    # An interpolation's end video comes with the query's row (the page's own row has no
    # ``end_parent`` loaded: reading it would cost a query).
    nodes = {
        pk: Node(row, end=fetched[pk].end_parent if pk in fetched else None)
        for pk, row in rows.items()
    }
    removed: dict[tuple[object, str], Node] = {}  # one "Removed video" per missing parent
    roots: list[Node] = []
    for pk, row in rows.items():  # created_at order, so siblings read oldest first
        node = nodes[pk]
        up = row.parent_id or (row.kept_ancestor_id if row.parent_removed_at else None)
        above = nodes.get(up) if up is not None else None
        if row.parent_id is None and row.parent_removed_at is not None:
            # The removed video is known by its upstream id (or, for a row made before that
            # was kept, by the moment of the delete, which its extensions share).
            key = (up, row.parent_remote_id or row.parent_removed_at.isoformat())
            if key not in removed:  # siblings that extended the same removed video share it
                removed[key] = Node(None, parent=above)
                (above.children if above else roots).append(removed[key])
            above = removed[key]
        node.parent = above
        (above.children if above else roots).append(node)
    root = roots[0] if roots else nodes[gen.pk]
    ordered: list[Node] = []
    stack = [(root, 0)]
    while stack:  # depth first, without recursion: a chain may be deeper than Python's stack
        node, depth = stack.pop()
        node.depth = depth
        ordered.append(node)
        stack.extend((child, depth + 1) for child in reversed(node.children))
    return Tree(root=root, current=nodes[gen.pk], nodes=ordered, arrivals=arrivals)


@dataclass(frozen=True)
class Mark:
    """One step of drawing the tree as nested lists, flat so the template needs no recursion:
    ``node`` (its ``<li>``, closed at once if it is a leaf), ``open`` (a ``<ul>`` of its
    children) or ``close`` (``</ul></li>``)."""

    kind: str
    node: Node


def marks(tree: Tree) -> list[Mark]:
    out: list[Mark] = []
    stack: list[tuple[Node, bool]] = [(tree.root, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            out.append(Mark("close", node))
            continue
        out.append(Mark("node", node))
        if node.children:
            out.append(Mark("open", node))
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.children))
    return out


def _under(node: Node) -> list[object]:
    found: list[object] = []
    stack = [node]
    while stack:
        node = stack.pop()
        if node.gen is not None:
            found.append(node.gen.pk)
        stack.extend(node.children)
    return found


def below(gen: Generation) -> list[object]:
    """The ids of the videos whose sequences may hold ``gen``'s clip: ``gen`` and every video
    under it (a sequence holds only its path's videos), and every interpolation that ends at
    ``gen`` with everything under it (a reverse extension of one plays on into ``gen``). One
    query (the tree's), plus one per interpolation into ``gen`` from another tree."""
    mine = tree(gen)
    found = _under(mine.current)
    for arrival in mine.arrivals:
        if arrival.pk not in found:
            found += [pk for pk in _under(tree(arrival).current) if pk not in found]
    return found


def path_clips(gen: Generation) -> list[Generation]:
    """The clips ``gen``'s chain plays, in order (``Node.clips``; the tree's one query)."""
    return tree(gen).current.clips()
