# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``KEY=VALUE`` env files as Docker Compose reads them (``.env``, ``env_file:``), and one writer.

A port of compose-go's ``dotenv/parser.go`` (compose-go v2, Docker Compose v2.40):

- blank lines and lines starting with ``#`` are skipped; ``export KEY=...`` is ``KEY=...``;
  ``KEY: value`` works like ``KEY=value``; a line ``KEY`` alone takes ``KEY`` from ``environ``
  (skipped when it is not there); keys hold letters, digits, ``_ . - [ ]`` and no space;
- unquoted values end at the line's end or at `` #`` (a space then ``#``), with surrounding
  white space trimmed; ``$$``, ``$NAME`` and ``${NAME...}`` are interpolated;
- ``'single'`` quotes are literal (only ``\\'`` stands for a quote) and may span lines;
- ``"double"`` quotes take the escapes ``\\n \\t \\r \\\\ \\" \\$`` (and ``\\a \\b \\f \\v``, ``\\0NNN``
  octal), may span lines, and are interpolated after the escapes;
- after a closing quote the rest of the line is read as the next statement (a ``#`` comment);
- a last line without ``=`` nor line break is compose-go's empty key ``""`` holding that line.

Interpolation, as compose-go's ``template`` package: ``$$`` is ``$``; ``$NAME`` and ``${NAME}``
are ``environ``'s value, else the value of an earlier key of the file, else empty;
``${NAME:-default}``, ``${NAME-default}``, ``${NAME:+alt}``, ``${NAME+alt}``,
``${NAME:?message}`` and ``${NAME?message}`` as in the shell; a ``$`` before anything else is kept.

``format_env_line`` writes one line that every reader above gives back exactly.
tests/integration/test_env_file_compose.py compares all of this with ``docker compose config``
(v2.40.3: no difference found).
Error messages name the line, never a value: values are secrets.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import OpsError

_BOM = "\ufeff"
_EXPORT = re.compile(r"^export[\t\n\f\r ]+")
# Go's unicode.IsSpace: the Latin-1 ones, then Unicode's White_Space above Latin-1.
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                      + "".join(chr(c) for c in range(0x2000, 0x200B)))
# dotenv's isSpace: a space that is not a line break.
_INLINE_SPACE = frozenset("\t\v\f\r \x85\xa0")
_KEY_PUNCTUATION = frozenset("_.-[]")
_ESCAPES = re.compile(r"\\(?:[abcfnrtv$\"\\]|0[0-9]{0,3})")
_ESCAPE_VALUES = {"a": "\a", "b": "\b", "c": None, "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                  "v": "\v", "\"": "\"", "\\": "\\", "$": "$$"}
_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
# (no DOTALL: compose-go's pattern wants the closing brace on the same line)
_BRACED = re.compile(r"([_A-Za-z][_A-Za-z0-9]*)(?:(:?[-+?])(.*))?")


def parse_env_text(text, environ=None):
    """Return ``{key: value}`` of an env file's text, read as Docker Compose reads it.

    ``environ`` (a mapping, default none) answers ``$NAME`` before the file's earlier keys and
    gives ``KEY`` lines their value, as compose's project environment does. Raises ``OpsError``
    naming the line for what compose refuses (a bad key, an unterminated quote, a bad
    ``${...}``, a ``${NAME?}`` left unset); never with a value in the message.
    """
    return _Parser(environ or {}).parse(text[1:] if text.startswith(_BOM) else text)


def read_env_file(path, environ=None, what="env file"):
    """``parse_env_text`` of the file at ``path`` (UTF-8; undecodable bytes kept as surrogates,
    so ``os.fsencode`` gives them back; no newline translation).

    Raises ``OpsError`` in one line naming ``what`` and ``path`` when the file cannot be read
    or parsed.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise OpsError("cannot read %s %s (%s)" % (what, path, exc.strerror or exc)) from None
    try:
        return parse_env_text(data.decode("utf-8", "surrogateescape"), environ)
    except OpsError as exc:
        raise OpsError("%s %s: %s" % (what, path, exc.message)) from None


def key_problem(key):
    """Why ``key`` cannot be written as an env file key, or ``""``."""
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    for char in key:
        if char not in _KEY_PUNCTUATION and unicodedata.category(char)[0] not in "LN":
            return "may hold only letters, digits, '_', '.', '-', '[' and ']'"
    return ""


def format_env_line(key, value):
    """One ``KEY=...`` line (no line break) that ``parse_env_text`` and Docker Compose read
    back as exactly ``value``.

    Single quotes when ``value`` has no single quote, no line break and no trailing backslash
    (compose reads ``\\'`` as a quote); else double quotes, with ``\\``, ``"``, ``$`` and line
    breaks escaped. Raises ``OpsError`` for a key no reader would take (the key is named, the
    value never).
    """
    problem = key_problem(key)
    if problem:
        raise OpsError("env file key %r %s" % (key, problem))
    value = "" if value is None else str(value)
    if "'" not in value and "\n" not in value and "\r" not in value and not value.endswith("\\"):
        return "%s='%s'" % (key, value)
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
               .replace("\n", "\\n").replace("\r", "\\r"))
    return '%s="%s"' % (key, escaped)


class _Parser:
    """compose-go's dotenv parser, statement by statement."""

    def __init__(self, environ):
        self.environ = environ
        self.line = 1
        self.out = {}

    def parse(self, src):
        while True:
            src = self._statement_start(src)
            if not src:
                return self.out
            key, rest, inherited = self._key(src)
            if " " in key:
                raise OpsError("line %d: a key cannot contain a space" % self.line)
            if inherited:
                if key in self.environ:
                    self.out[key] = self.environ[key]
                src = rest
                continue
            value, src = self._value(rest)
            self.out[key] = value

    def _statement_start(self, src):
        while True:
            pos = 0
            while pos < len(src) and src[pos] in _GO_SPACE:
                if src[pos] == "\n":
                    self.line += 1
                pos += 1
            src = src[pos:]
            if not src or src[0] != "#":
                return src
            end = src.find("\n")
            if end < 0:
                return ""
            src = src[end:]

    def _key(self, src):
        match = _EXPORT.match(src)
        if match:
            src = src[len("export"):].lstrip("".join(_INLINE_SPACE))
        key, offset, inherited = "", 0, False
        for index, char in enumerate(src):
            if char in _INLINE_SPACE:
                continue
            if char in "=:\n":
                key, offset, inherited = src[:index], index + 1, char == "\n"
                break
            if char in _KEY_PUNCTUATION or unicodedata.category(char)[0] in "LN":
                continue
            raise OpsError("line %d: unexpected character in a variable name (letters, digits, '_', '.', '-', "
                           "'[' and ']')" % self.line)
        if not src:
            raise OpsError("line %d: 'export' without a variable" % self.line)
        if inherited and " " not in key:
            self.line += 1
        key = key.rstrip("".join(_GO_SPACE))
        return key, src[offset:].lstrip("".join(_INLINE_SPACE)), inherited

    def _value(self, src):
        quote = src[:1]
        if quote not in ("'", '"'):
            value, _sep, rest = src.partition("\n")
            self.line += 1
            value = value.split(" #", 1)[0].rstrip("".join(_GO_SPACE))
            return self._interpolate(value), rest
        chars = []
        escape = False
        for index in range(1, len(src)):
            char = src[index]
            if char == "\n":
                self.line += 1
            if char != quote:
                if not escape and char == "\\":
                    escape = True
                    continue
                if escape:
                    escape = False
                    chars.append("\\")
                chars.append(char)
                continue
            if escape:
                escape = False
                chars.append(char)
                continue
            value = "".join(chars)
            if quote == '"':
                value = self._interpolate(_ESCAPES.sub(_unescape, value))
            return value, src[index + 1:]
        raise OpsError("line %d: unterminated quoted value" % self.line)

    def _lookup(self, name):
        if name in self.environ:
            return self.environ[name], True
        if name in self.out:
            return self.out[name], True
        return "", False

    def _interpolate(self, template):
        """compose-go's template.Substitute with the file's mapping."""
        out = []
        index = 0
        while True:
            dollar = template.find("$", index)
            if dollar < 0:
                out.append(template[index:])
                return "".join(out)
            out.append(template[index:dollar])
            after = template[dollar + 1:dollar + 2]
            if after == "$":
                out.append("$")
                index = dollar + 2
                continue
            named = _NAME.match(template, dollar + 1)
            if named:
                out.append(self._lookup(named.group(0))[0])
                index = named.end()
                continue
            if after != "{":
                out.append("$")
                index = dollar + 1
                continue
            close = _closing_brace(template, dollar)
            braced = _BRACED.fullmatch(template, dollar + 2, close) if close > 0 else None
            if not braced:
                raise OpsError("line %d: invalid interpolation format" % self.line)
            out.append(self._substitute(*braced.groups()))
            index = close + 1

    def _substitute(self, name, operator, word):
        value, found = self._lookup(name)
        if operator is None:
            return value
        if operator in ("-", ":-"):
            absent = not found or (operator == ":-" and value == "")
            return self._interpolate(word) if absent else value
        if operator in ("+", ":+"):
            present = found and (operator == "+" or value != "")
            return self._interpolate(word) if present else value
        if not found or (operator == ":?" and value == ""):
            raise OpsError("line %d: required variable %s is missing a value" % (self.line, name))
        return value


def _closing_brace(text, start):
    """compose-go's getFirstBraceClosingIndex over ``text[start:]``: the index of the ``}``
    closing the ``${`` at ``start``, or -1."""
    depth = 0
    index = start
    while index < len(text):
        if text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
        if text[index] == "{":
            depth += 1
            index += 1
        index += 1
    return -1


def _unescape(match):
    """One escape of a double-quoted value, as compose-go's expandEscapes (Go's UnquoteChar)."""
    text = match.group(0)
    if text[1] == "0":
        digits = text[2:]
        if len(digits) == 3 and set(digits) <= set("01234567") and int(digits, 8) <= 0o377:
            return chr(int(digits, 8))
        return "\\" + digits  # compose-go keeps its rewritten \0NN -> \NN when Go refuses it
    replacement = _ESCAPE_VALUES[text[1]]
    return text if replacement is None else replacement
