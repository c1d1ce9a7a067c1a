"""Read a spec file's YAML strictly: no duplicate keys, a small alias budget, bounded size.

``yaml.safe_load`` keeps the last of two equal keys (a modality written twice
silently loses its first definition) and expands aliases without limit (nine
lines of anchors make 10^9 nodes).  :func:`load_spec_yaml` refuses both, with
the line of the problem, and refuses files over ``MAX_SPEC_BYTES``.
"""

from __future__ import annotations

from typing import Any

import yaml

from fusion_assets.kinds.limits import MAX_SPEC_BYTES, MAX_YAML_ALIASES, MAX_YAML_NODES

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLProblem(ValueError):
    """The spec's YAML is unusable; ``problem`` and ``fix`` say why and what to do."""

    def __init__(self, problem: str, fix: str):
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem} -> {fix}")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and refuses duplicate mapping keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                mark = self.peek_event().start_mark
                raise YAMLProblem(
                    f"more than {MAX_YAML_ALIASES} YAML aliases (*name), the last at line "
                    f"{mark.line + 1}",
                    "write the values out instead of reusing anchors",
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # '<<: *defaults' merges keys that explicit ones may override
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, list | dict):
                continue  # the base constructor reports unhashable keys
            if key in seen:
                raise YAMLProblem(
                    f"key {key!r} appears twice in one mapping (lines {seen[key]} and {line}); "
                    "YAML would silently keep only the last",
                    "remove or rename one of them",
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """Nodes of ``node`` with every alias expanded (shared nodes counted each time)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = 1  # a recursive alias counts once, not forever
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[id(node)] = size
    return size


def load_spec_yaml(text: str) -> Any:
    """The YAML document in ``text``; :class:`YAMLProblem` or ``yaml.YAMLError`` when unusable."""
    if len(text.encode("utf-8")) > MAX_SPEC_BYTES:
        raise YAMLProblem(
            f"the file is over {MAX_SPEC_BYTES:,} bytes",
            "a cohort spec describes files; keep data in the source files",
        )
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_YAML_NODES:
            raise YAMLProblem(
                f"the document expands to {size:,} YAML nodes (aliases included), over the "
                f"limit of {MAX_YAML_NODES:,}",
                "write the spec without nested anchors",
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()
