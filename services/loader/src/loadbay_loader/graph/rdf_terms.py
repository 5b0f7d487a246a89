"""RDF terms in N-Triples syntax, as the quad store keeps them (rdf_store.py): the checks and
the canonical form shared by the line parser (rdf.py) and the document parser
(rdf_documents.py).

Both parse with pyoxigraph, whose terms print in the canonical form the store keeps: an IRI as
``<iri>``; a literal with only the characters that must be escaped escaped (``\\" \\\\ \\b \\t
\\n \\f \\r``, the other controls as ``\\u00XX``), its language tag lowercased and no
``^^xsd:string``. :func:`node_term` adds what the store needs on top: blank node labels scoped
to their feed, and a refusal of what RDF 1.1 has no place for (RDF 1.2 triple terms and base
directions).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pyoxigraph as ox

# An absolute IRI with none of the characters IRIREF forbids (after \u escapes are decoded: a
# space is no more valid as \u0020), and no lone surrogate (from an escaped \uD800).
_IRI = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\\ud800-\udfff]*')
_XML_LITERAL = "http://www.w3.org/1999/02/22-rdf-syntax-ns#XMLLiteral"


class BadStatement(ValueError):
    """A statement that is not valid RDF (or a line that could not be parsed)."""


def iri_term(iri: str) -> str:
    """An IRI in N-Triples syntax, if it is a valid absolute IRI."""
    if not _IRI.fullmatch(iri):
        raise BadStatement(f"not a valid absolute IRI: {shown(iri)}")
    return f"<{iri}>"


def node_term(node: Any, bnode_prefix: str) -> str:
    """A pyoxigraph subject, predicate, object or graph name as the store keeps it."""
    kind = type(node)
    if kind is ox.NamedNode:  # pyoxigraph parsed it as an absolute IRI (RFC 3987)
        return str(node)
    if kind is ox.Literal:
        if node.direction is not None:
            raise BadStatement(f"a literal with a base direction (RDF 1.2) is unsupported: {node}")
        return str(node)
    if kind is ox.BlankNode:
        return f"_:{bnode_prefix}{node.value}"
    raise BadStatement(f"a triple term (RDF 1.2) is not supported: {node}")


def rdfxml_object_term(node: Any, bnode_prefix: str) -> str:
    """The object of an RDF/XML statement: as :func:`node_term`, except that the XML literal
    of a ``rdf:parseType="Literal"`` element is in its exclusive canonical form, as RDF/XML
    defines it. pyoxigraph copies every namespace declaration in scope onto the literal's
    elements; canonical XML keeps only those the content uses (``<br></br>``, not ``<br
    xmlns:rdf="..."></br>``)."""
    if type(node) is ox.Literal and node.datatype.value == _XML_LITERAL:
        return node_term(ox.Literal(_canonical_xml(node.value), datatype=node.datatype), "")
    return node_term(node, bnode_prefix)


def _canonical_xml(content: str) -> str:
    """Exclusive canonical XML (with comments) of well-balanced XML content; the content as
    it is if it does not parse."""
    try:
        wrapped = ET.canonicalize(f"<w>{content}</w>", with_comments=True)
    except ET.ParseError:
        return content
    return wrapped.removeprefix("<w>").removesuffix("</w>")


def shown(text: str, limit: int = 120) -> str:
    """`text` quoted for a message, cut at `limit` characters; what a person could not read
    or PostgreSQL could not store (controls, NUL, lone surrogates) is escaped."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return repr(cut)
