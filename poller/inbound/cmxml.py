"""Campaign Monitor's XML payload read into the names of its JSON one. Pure.

``<ListEvents><Events><SubscribeEvent>...</SubscribeEvent></Events><ListID>..</ListID></ListEvents>``
becomes ``{"Events": [{...}], "ListID": "..."}``: elements are matched by local name (the
namespace is ignored), ``Events`` and ``CustomFields`` hold lists, other elements with children
become objects, and leaves become their text. A document type declaration is refused: it is
how entity-expansion bombs arrive, and Campaign Monitor sends none.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

__all__ = ["XmlError", "read_xml"]

LISTS = frozenset({"Events", "CustomFields"})
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class XmlError(ValueError):
    """A body that is not well-formed XML, or one this reader refuses."""


def read_xml(body: bytes) -> dict[str, object]:
    if _DOCTYPE.search(body):
        raise XmlError("XML with a document type declaration is refused (entities could expand without bound)")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        line, column = exc.position
        raise XmlError(f"not well-formed XML: {_reason(exc)} at line {line}, column {column + 1}") from None
    try:
        value = _value(root)
    except RecursionError:  # (expat nests without bound; this walk recurses per level)
        raise XmlError("the XML nests too deeply to be read (about 1,000 levels or more)") from None
    if not isinstance(value, dict):
        raise XmlError(f"the XML root <{_local(root.tag)}> holds no elements")
    return value


def _reason(exc: ET.ParseError) -> str:
    return str(exc).split(":", 1)[0]


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1] if text.startswith("{") else text


def _value(element: ET.Element) -> object:
    children = list(element)
    name = _local(element.tag)
    if name in LISTS:
        return [_value(child) for child in children]
    if not children:
        return element.text or ""
    out: dict[str, object] = {}
    repeated: set[str] = set()
    for child in children:
        key = _local(child.tag)
        value = _value(child)
        if key in repeated:
            out[key].append(value)  # type: ignore[union-attr]
        elif key in out:  # a repeated element: a list of its values
            out[key] = [out[key], value]
            repeated.add(key)
        else:
            out[key] = value
    return out
