"""RDF terms in N-Triples syntax, as the quad store keeps them (rdf_store.py): the checks and
the canonical form shared by the line parser (rdf.py) and the document parser
(rdf_documents.py)."""

from __future__ import annotations

import re

_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
# An absolute IRI with none of the characters IRIREF forbids (after \u escapes are decoded: a
# space is no more valid as \u0020), and no lone surrogate (from an escaped \uD800).
_IRI = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\\ud800-\udfff]*')
_SURROGATE = re.compile("[\ud800-\udfff]")
_ECHARS = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f\x7f]')


class BadStatement(ValueError):
    """A statement that is not valid RDF (or a line that could not be parsed)."""


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ECHARS.get(char) or f"\\u{ord(char):04X}"


def iri_term(iri: str) -> str:
    """An IRI in N-Triples syntax, if it is a valid absolute IRI."""
    if not _IRI.fullmatch(iri):
        raise BadStatement(f"not a valid absolute IRI: <{iri}>")
    return f"<{iri}>"


def literal_term(lexical: str, language: str | None, datatype: str | None) -> str:
    """A literal in canonical N-Triples syntax (the characters that must be are escaped)."""
    if _SURROGATE.search(lexical):
        raise BadStatement("a literal holds a lone surrogate (an escaped \\uD800-\\uDFFF)")
    quoted = _NEEDS_ESCAPE.sub(_escape, lexical)
    if language:
        return f'"{quoted}"@{language.lower()}'
    if datatype and datatype != _XSD_STRING:
        return f'"{quoted}"^^{iri_term(datatype)}'
    return f'"{quoted}"'
