"""Reading a mapping file's YAML with bounded cost, and the error every mistake becomes.

The mapping is read at start-up from a path an operator chose, so a wrong or hostile
file must stop start-up at once with one line per problem, never hang or print a
traceback. Three bounds make the cost of reading proportional to a small size:

- the file is at most :data:`MAX_MAPPING_BYTES` (read no further, so ``/dev/zero``
  or a 10 MB file costs nothing);
- YAML aliases are refused: an alias is a reference, so a few hundred
  bytes of nested aliases ("billion laughs") expand to 10⁹ values for whoever walks
  them — validation, or an error message's ``repr()``. A mapping has no use for them;
- nesting is at most :data:`MAX_DEPTH` deep and a document at most :data:`MAX_NODES`
  values, checked while composing, before PyYAML's recursive composer could run out
  of stack (a list nested 900 deep was a ``RecursionError``).

The pure-Python PyYAML scanner reads about 0.5 MB/s on these machines and composes
about 50,000 values a second, so these limits keep every failure under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mappings.fields import shown

#: Largest mapping file read, in bytes. The shipped mapping is under 5 KB and a
#: district's is a few KB; 256 KiB leaves fifty times that, and scanning it costs
#: at most a quarter of a second.
MAX_MAPPING_BYTES = 256 * 1024

#: Deepest nesting of lists and mappings (the shipped mapping is 6 deep).
MAX_DEPTH = 20

#: Most values (scalars, lists and mappings) in one document (the shipped one has 189).
MAX_NODES = 10_000

#: Most problems written in a :class:`MappingError`'s message; the rest are counted.
MAX_SHOWN_PROBLEMS = 10

#: Longest line of a :class:`MappingError`'s message, in characters.
MAX_LINE = 300


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


class MappingError(Exception):
    """The mapping file cannot be used; each problem names its key path.

    The message is one line per problem (at most :data:`MAX_SHOWN_PROBLEMS`, each cut
    to :data:`MAX_LINE` characters), prefixed with ``mapping SOURCE:`` when the
    source is known; :attr:`problems` holds them all.
    """

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        prefix = f"mapping {source}: " if source else ""
        lines = [_clip(prefix + problem) for problem in problems[:MAX_SHOWN_PROBLEMS]]
        if len(problems) > MAX_SHOWN_PROBLEMS:
            lines.append(f"{prefix}… and {len(problems) - MAX_SHOWN_PROBLEMS} more problems")
        super().__init__("\n".join(lines))


def read_document(path: Path, max_bytes: int = MAX_MAPPING_BYTES) -> object:
    """The YAML document in ``path``, parsed with the bounds above.

    :raises MappingError: when the file cannot be read, is too large, is not UTF-8,
        is not YAML, or uses aliases or nests too deep (naming the key path).
    """
    source = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise MappingError([f"cannot read: {exc.strerror or exc}"], source) from None
    return parse_document(raw, source, max_bytes)


def parse_document(raw: bytes, source: str | None = None, max_bytes: int = MAX_MAPPING_BYTES) -> object:
    """A mapping document given as bytes (a file's, or one uploaded to the admin
    API's what-if), parsed with the bounds above.

    :raises MappingError: when it is too large, is not UTF-8, is not YAML, or uses
        aliases or nests too deep (naming the key path).
    """
    if len(raw) > max_bytes:
        raise MappingError([f"file is larger than {max_bytes:,} bytes; a mapping is a few KB"], source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MappingError([f"not UTF-8 text (byte {exc.start})"], source) from None
    try:
        loader = _MappingLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses a control character before any parsing
        raise MappingError([_yaml_problem("", exc)], source) from None
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise MappingError([exc.problem], source) from None
    except yaml.YAMLError as exc:
        raise MappingError([_yaml_problem(loader.key_path(), exc)], source) from None
    finally:
        loader.dispose()


def _yaml_problem(key_path: str, exc: yaml.YAMLError) -> str:
    """A PyYAML error on one line (its own ``str()`` quotes the source over several)."""
    if isinstance(exc, yaml.reader.ReaderError):
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        problem = f"character U+{character:04X} (at character {exc.position + 1}) is not allowed in YAML"
    elif isinstance(exc, yaml.MarkedYAMLError):
        words = [part for part in (exc.context, exc.problem) if part]
        problem = ", ".join(words) or "syntax error"
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            problem += f" (line {mark.line + 1}, column {mark.column + 1})"
    else:
        problem = str(exc).replace("\n", " ")
    return f"{key_path}: not valid YAML: {problem}" if key_path else f"not valid YAML: {problem}"


class _Refused(Exception):
    """A bound of :func:`read_document` was hit; ``problem`` says where and which."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class _MappingLoader(yaml.SafeLoader):
    """A safe loader that refuses aliases, duplicate keys, deep nesting and too many values.

    It keeps the key path of the node being composed, so each refusal names it.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str | int | None] = []
        self._nodes = 0

    def key_path(self) -> str:
        """The key path being composed, as ``policy.holidays[2]``."""
        parts: list[str] = []
        for item in self._path:
            if isinstance(item, int):
                parts.append(f"[{item}]")
            elif item is not None:
                parts.append(f"{'.' if parts else ''}{item if len(item) <= 40 else item[:39] + '…'}")
        return "".join(parts)

    def _refuse(self, problem: str, mark: yaml.Mark) -> _Refused:
        where = f" (line {mark.line + 1}, column {mark.column + 1})"
        path = self.key_path()
        return _Refused(f"{path}: {problem}{where}" if path else f"{problem}{where}")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(parent, yaml.SequenceNode):
            self._path.append(index)
        elif isinstance(parent, yaml.MappingNode):
            # index is the key's node when composing a value, None when composing a key.
            self._path.append(index.value if isinstance(index, yaml.ScalarNode) else None)
        if isinstance(event, yaml.AliasEvent):
            # An anchor alone is harmless; only an alias can multiply a value.
            raise self._refuse(
                f"YAML aliases are not allowed (*{shown(event.anchor)[1:-1]}): write the value out", event.start_mark
            )
        if len(self._path) > MAX_DEPTH:
            raise self._refuse(f"nested more than {MAX_DEPTH} deep", event.start_mark)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise self._refuse(f"more than {MAX_NODES:,} values in the file", event.start_mark)
        node = super().compose_node(parent, index)
        # Not popped on an error, so that the error can name where it happened.
        if parent is not None:
            self._path.pop()
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # PyYAML would silently keep the last of two equal keys.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable: SafeLoader reports it below
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {shown(key)}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
