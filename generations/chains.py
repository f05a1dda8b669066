"""A video's chain as the tree it is: the root, its extensions, theirs, and so on. Two extensions
of one video are branches, side by side.

The whole tree is read in ONE query, whatever its depth: a recursive CTE walks up from the video
to its root and back down to every descendant, and the rows come with it (``pk IN (WITH
RECURSIVE ...)``). The link to follow is ``parent`` or, where the parent was deleted,
``kept_ancestor`` (the nearest ancestor still there; ``parent_removed_at`` says a link is
missing), so a removed video keeps its place as a "Removed video" node.

A path from the root to one video is what "Play from the start" plays and ``chain.mp4`` joins.
Which clips that takes depends on whether an extension's video already holds its parent's:
``LUMA_EXTENSION_CONTAINS_PARENT`` (docs/ARCHITECTURE.md, "Chains").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models.expressions import RawSQL

from generations.models import Generation, Status

# Far deeper than any real chain; only a guard against a cycle a broken row could make.
MAX_DEPTH = 1000


@dataclass
class Node:
    """One video of the tree (``gen``), or a removed one (``gen`` None) standing in its place."""

    gen: Generation | None
    depth: int = 0
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)

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

    def clips(self) -> list[Generation]:
        """What plays, in order, from the root to this video (see ``clips_of``)."""
        return clips_of([n.gen for n in self.path()])

    @property
    def several_videos(self) -> bool:
        """Its path holds more than this video (else "the chain" is this video's own MP4)."""
        return self.gen is not None and sum(n.gen is not None for n in self.path()) > 1

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
        """Worth a section: more than the video itself (a removed parent counts)."""
        return len(self.nodes) > 1

    @property
    def marks(self) -> list[Mark]:
        return marks(self)


def clips_of(path: list[Generation | None]) -> list[Generation]:
    """The videos that make up a path, in order. If an extension's video already contains its
    parent's, the last video alone is the whole path; otherwise every video of it plays, one
    after another (a removed link is simply missing: its video is gone)."""
    kept = [gen for gen in path if gen is not None]
    if not kept:
        return []
    if settings.LUMA_EXTENSION_CONTAINS_PARENT:
        return [kept[-1]]
    return kept


def _tree_rows(gen: Generation) -> list[Generation]:
    """Every row of ``gen``'s tree, in one query."""
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
    """  # noqa: S608
    param = pk.get_db_prep_value(gen.pk, connection)
    rows = RawSQL(sql, [param])  # noqa: S611 (see above)
    query = Generation.objects.filter(pk__in=rows).select_related("created_by")
    return list(query.order_by("created_at", "pk"))


def tree(gen: Generation) -> Tree:
    """``gen``'s chain as a tree (a single node when it has none), in one query."""
    rows = {row.pk: row for row in _tree_rows(gen)}
    rows[gen.pk] = gen  # the page's own row, with its annotations
    nodes = {pk: Node(row) for pk, row in rows.items()}
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
    return Tree(root=root, current=nodes[gen.pk], nodes=ordered)


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


def below(gen: Generation) -> list[object]:
    """The ids of ``gen`` and of every video under it (its extensions, theirs...): the videos
    whose paths hold ``gen``'s clip. One query (the tree's)."""
    found: list[object] = []
    stack = [tree(gen).current]
    while stack:
        node = stack.pop()
        if node.gen is not None:
            found.append(node.gen.pk)
        stack.extend(node.children)
    return found


def path_clips(gen: Generation) -> list[Generation]:
    """The clips from ``gen``'s root to ``gen``, in order (the tree's one query)."""
    return tree(gen).current.clips()
