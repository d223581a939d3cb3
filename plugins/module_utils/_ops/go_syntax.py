# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two Go syntaxes dockerd parses in log options, checked without Go.

* ``go_regexp_problem``: what Go's ``regexp.Compile`` (RE2 syntax, Perl flags) says of a
  pattern - ``labels-regex``, ``env-regex``, ``awslogs-multiline-pattern``. It follows the
  error cases of Go's ``regexp/syntax`` parser (missing ``)``/``]``, repetition without an
  argument or nested, counts above 1000, Perl constructs RE2 lacks such as look-arounds and
  back-references, unknown escapes). Unicode class names other than the common ones are
  refused although Go may know them: deliberately stricter.
* ``go_tag_template_problem``: what Go's ``text/template`` says of a log ``tag`` when dockerd
  parses it and runs it on the container's ``logger.Info``. Plain text and actions made of
  the Info's fields and methods, the functions dockerd adds (``lower``, ``truncate``, ...)
  and ``print``/``printf``/``len``/``index`` on a map pass when their types fit; control
  structures, variables and comparisons are refused: deliberately stricter.

Each returns ``None`` when the text passes, else ``(reason, strict)``: ``strict`` is True
when Go would take it and the refusal is this check's own caution.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------------------- regexp (RE2)

MAX_REPEAT = 1000  # also the most copies nested repetitions may make of their innermost part
MAX_NESTING = 500  # Go stops at 1000 levels of its tree; deeper than this is refused as caution
MAX_LENGTH = 1000  # Go limits the compiled size; longer patterns are refused as caution
_PERL_CLASSES = set("dDsSwW")
_EMPTY_WIDTH = set("AzbB")
_C_ESCAPES = set("aftnrv")
_POSIX_CLASSES = ("alnum alpha ascii blank cntrl digit graph lower print punct space upper "
                  "word xdigit").split()
_UNICODE_CLASSES = set(("L Lu Ll Lt Lm Lo M Mn Mc Me N Nd Nl No P Pc Pd Ps Pe Pi Pf Po S Sm "
                        "Sc Sk So Z Zs Zl Zp C Cc Cf Co Cs Any Latin Greek Cyrillic Han Arabic "
                        "Hebrew Hiragana Katakana Hangul Thai Devanagari Armenian Georgian "
                        "Common").split())
_REPEAT_RE = re.compile(r"\{(\d+)(,(\d*))?\}")


def go_regexp_problem(pattern):
    """``None`` when Go's ``regexp.Compile`` takes ``pattern``, else ``(reason, strict)``."""
    return _GoRegexp(pattern).check()


class _GoRegexp:
    """A walk over an RE2 pattern that stops at the first thing Go would refuse."""

    def __init__(self, pattern):
        self.text = pattern
        self.pos = 0
        self.depth = 0  # open groups
        self.copies = [1]  # per open group (and the top): most copies a repetition inside made
        self.last_copies = 1  # copies the atom just before makes of its innermost part
        self.names = set()
        self.can_repeat = False  # an atom precedes (a repetition has an argument)
        self.repeated = False  # the atom before was itself a repetition

    def check(self):
        if len(self.text) > MAX_LENGTH:
            return "longer than %d characters (Go limits a compiled pattern's size)" % MAX_LENGTH, True
        try:
            self.text.encode("utf-8")
        except UnicodeError:
            return "invalid UTF-8", False
        try:
            while self.pos < len(self.text):
                self._step()
            if self.depth:
                return "missing closing )", False
        except _Refused as refused:
            return refused.args[0], refused.args[1]
        return None

    def _atom(self, copies=1):
        self.can_repeat, self.repeated, self.last_copies = True, False, copies

    def _step(self):
        char = self.text[self.pos]
        if char == "(":
            self._group()
        elif char == ")":
            if not self.depth:
                raise _Refused("unexpected )", False)
            self.depth -= 1
            self.pos += 1
            self._atom(self.copies.pop())
        elif char == "|":
            self.pos += 1
            self.can_repeat = self.repeated = False
        elif char in "*+?":
            self._repeat(char)
        elif char == "{" and _REPEAT_RE.match(self.text, self.pos):
            match = _REPEAT_RE.match(self.text, self.pos)
            low = int(match.group(1))
            high = low if match.group(2) is None else (int(match.group(3)) if match.group(3) else -1)
            if low > MAX_REPEAT or high > MAX_REPEAT or (high != -1 and high < low):
                raise _Refused("invalid repeat count %s" % match.group(0), False)
            self._repeat(match.group(0), high if high != -1 else low)
        elif char == "[":
            self._class()
        elif char == "\\":
            self._escape()
        else:
            self.pos += 1
            self._atom()

    def _repeat(self, operator, count=1):
        if not self.can_repeat:
            raise _Refused("missing argument to repetition operator %s" % operator, False)
        if self.repeated:
            raise _Refused("invalid nested repetition operator %s" % operator, False)
        copies = self.last_copies * max(count, 1)
        if copies > MAX_REPEAT:
            raise _Refused("invalid repeat count %s: nested repetitions make more than %d copies"
                           % (operator, MAX_REPEAT), False)
        self.copies[-1] = max(self.copies[-1], copies)
        self.last_copies = copies
        self.pos += len(operator)
        if self.text.startswith("?", self.pos):
            self.pos += 1  # non-greedy
        self.can_repeat, self.repeated = True, True

    def _open(self):
        self.depth += 1
        self.copies.append(1)

    def _group(self):
        if self.depth >= MAX_NESTING:
            raise _Refused("expression nests too deeply", True)
        rest = self.text[self.pos:]
        if not rest.startswith("(?"):
            self._open()
            self.pos += 1
            self.can_repeat = self.repeated = False
            return
        named = re.match(r"\(\?P<([^>]*)>", rest)
        if named:
            name = named.group(1)
            if not re.match(r"^[A-Za-z0-9_]+$", name) or name in self.names:
                raise _Refused("invalid named capture (?P<%s>" % name, False)
            self.names.add(name)
            self._open()
            self.pos += named.end()
            self.can_repeat = self.repeated = False
            return
        if rest.startswith("(?<") and not rest.startswith(("(?<=", "(?<!")):
            raise _Refused("(?<name> needs Go 1.22 (Docker 20.10 and 26 refuse it); use (?P<name>", True)
        flags = re.match(r"\(\?([^:)]*)([:)])", rest)
        if not flags or not _valid_flags(flags.group(1), flags.group(2) == ":"):
            shown = flags.group(0) if flags else rest[:4]
            raise _Refused("invalid or unsupported Perl syntax %s (RE2 has no look-arounds, "
                           "back-references, comments or atomic groups)" % shown, False)
        self.pos += flags.end()
        if flags.group(2) == ":":
            self._open()
        self.can_repeat = self.repeated = False

    def _class(self):
        self.pos += 1
        if self.text.startswith("^", self.pos):
            self.pos += 1
        first, previous = True, None
        while True:
            if self.pos >= len(self.text):
                raise _Refused("missing closing ]", False)
            char = self.text[self.pos]
            if char == "]" and not first:
                self.pos += 1
                self._atom()
                return
            first = False
            if self.text.startswith("[:", self.pos):
                end = self.text.find(":]", self.pos + 2)
                if end != -1:
                    name = self.text[self.pos + 2:end]
                    if name.lstrip("^") not in _POSIX_CLASSES:
                        raise _Refused("invalid character class range [:%s:]" % name, False)
                    self.pos = end + 2
                    previous = None
                    continue
            if char == "-" and previous is not None and self.pos + 1 < len(self.text) \
                    and self.text[self.pos + 1] != "]":
                self.pos += 1
                high = self._class_char()
                if high is None or high < previous:
                    raise _Refused("invalid character class range", False)
                previous = None
                continue
            previous = self._class_char()

    def _class_char(self):
        """One character of a class (its code point), or ``None`` for a class like ``\\d``."""
        if self.text[self.pos] != "\\":
            self.pos += 1
            return ord(self.text[self.pos - 1])
        return self._escape(in_class=True)

    def _escape(self, in_class=False):
        if self.pos + 1 >= len(self.text):
            raise _Refused("trailing backslash at end of expression", False)
        char = self.text[self.pos + 1]
        self.pos += 2
        value = None
        if char in _PERL_CLASSES:
            pass
        elif char in "pP":
            self._unicode_class()
        elif char in _EMPTY_WIDTH and not in_class:
            pass
        elif char == "Q" and not in_class:
            end = self.text.find("\\E", self.pos)
            quoted = self.text[self.pos:] if end == -1 else self.text[self.pos:end]
            self.pos = len(self.text) if end == -1 else end + 2
            if not quoted:
                return None  # \Q\E quotes nothing: what precedes stays the last atom
        elif char in "01234567":
            value = self._octal(char)
        elif char == "x":
            value = self._hex()
        elif char in _C_ESCAPES:
            value = {"a": 7, "f": 12, "t": 9, "n": 10, "r": 13, "v": 11}[char]
        elif char == "_":
            raise _Refused("\\_ is taken only by newer Go versions than some engines have", True)
        elif ord(char) < 128 and not char.isalnum():
            value = ord(char)
        else:
            raise _Refused("invalid escape sequence \\%s" % char, False)
        if not in_class:
            self._atom()
        return value

    def _octal(self, first):
        digits = re.match(r"[0-7]{0,2}", self.text[self.pos:]).group(0)
        if first != "0" and not digits:
            raise _Refused("invalid escape sequence \\%s (RE2 has no back-references)" % first, False)
        self.pos += len(digits)
        return int(first + digits, 8)

    def _hex(self):
        braced = re.match(r"\{([0-9A-Fa-f]{1,8})\}", self.text[self.pos:])
        plain = re.match(r"[0-9A-Fa-f]{2}", self.text[self.pos:])
        if braced and int(braced.group(1), 16) <= 0x10FFFF:
            self.pos += braced.end()
            return int(braced.group(1), 16)
        if plain:
            self.pos += 2
            return int(plain.group(0), 16)
        raise _Refused("invalid escape sequence \\x", False)

    def _unicode_class(self):
        braced = re.match(r"\{\^?([A-Za-z_]+)\}", self.text[self.pos:])
        if braced:
            name, self.pos = braced.group(1), self.pos + braced.end()
        elif self.pos < len(self.text) and self.text[self.pos].isalpha():
            name, self.pos = self.text[self.pos], self.pos + 1
        else:
            raise _Refused("invalid character class range \\p", False)
        if name not in _UNICODE_CLASSES:
            raise _Refused("Unicode class \\p{%s}: not one this check knows Go has" % name, True)


def _valid_flags(flags, group):
    """Go's ``(?flags)`` and ``(?flags:``: some of i, m, s, U, at most one ``-`` with a flag
    after it; only a group (``(?:``) may have none."""
    if not flags:
        return group
    return bool(re.match(r"^[imsU]*(-[imsU]+)?$", flags))


class _Refused(Exception):
    """Stops the walk: ``args`` = (reason, strict)."""


# ---------------------------------------------------------------------------- tag templates

# logger.Info, the value a tag template runs on: fields and methods without arguments.
INFO_FIELDS = {
    "Config": "map", "ContainerID": "str", "ContainerName": "str", "ContainerEntrypoint": "str",
    "ContainerArgs": "strs", "ContainerImageID": "str", "ContainerImageName": "str",
    "ContainerCreated": "time", "ContainerEnv": "strs", "ContainerLabels": "map",
    "LogPath": "str", "DaemonName": "str",
    "ID": "str", "FullID": "str", "Name": "str", "ImageID": "str", "ImageFullID": "str",
    "ImageName": "str", "Command": "str", "Hostname": "str",
}
# name: (parameter types, variadic type or None, result). "any" takes every type.
TEMPLATE_FUNCS = {
    "json": (("any",), None, "str"), "split": (("str", "str"), None, "strs"),
    "join": (("strs", "str"), None, "str"), "title": (("str",), None, "str"),
    "lower": (("str",), None, "str"), "upper": (("str",), None, "str"),
    "pad": (("str", "int", "int"), None, "str"), "truncate": (("str", "int"), None, "str"),
    "print": ((), "any", "str"), "println": ((), "any", "str"), "printf": (("str",), "any", "str"),
    "html": ((), "any", "str"), "js": ((), "any", "str"), "urlquery": ((), "any", "str"),
    "len": (("sized",), None, "int"), "index": (("map", "str"), None, "str"),
}
_GO_TYPES = {"info": "*logger.Info", "str": "string", "strconst": "string", "strs": "[]string",
             "map": "map[string]string", "int": "int", "intconst": "int", "time": "time.Time",
             "sized": "string, slice or map", "bool": "bool", "any": "a number"}
_STRICT_WORDS = ("if else end range with define template block break continue nil and or not "
                 "eq ne lt le gt ge slice call").split()
_TOKEN_RE = re.compile(r"""\s*(?:(?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)|(?P<dot>\.)|
    (?P<str>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>[-+]?[0-9][0-9a-fA-FxXoObB_.]*)|
    (?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<var>\$[A-Za-z0-9_]*)|(?P<punct>[()|])|(?P<other>\S))""",
                       re.X)


def go_tag_template_problem(template):
    """``None`` when dockerd parses and runs ``template`` as a log tag, else ``(reason, strict)``."""
    pos = 0
    while True:
        start = template.find("{{", pos)
        if start == -1:
            return None
        end = template.find("}}", start + 2)
        if end == -1:
            return "unclosed action {{ in the template", False
        action = template[start + 2:end]
        if action.startswith("- ") or action.startswith("-\t") or action.startswith("-\n"):
            action = action[2:]
        if action.endswith((" -", "\t-", "\n-")):
            action = action[:-2]
        problem = _action_problem(action.strip())
        if problem:
            return problem
        pos = end + 2


def _action_problem(action):
    if action.startswith("/*"):
        return None if action.endswith("*/") else ("unclosed comment in {{%s}}" % action, False)
    try:
        tokens = _tokens(action)
        if any(kind == "var" for kind, _text in tokens):
            raise _Refused("{{%s}}: template variables ($...) are beyond this check" % action, True)
        _Pipeline(tokens, action).check()
    except _Refused as refused:
        return refused.args[0], refused.args[1]
    return None


def _tokens(action):
    tokens, pos = [], 0
    while pos < len(action):
        match = _TOKEN_RE.match(action, pos)
        if not match or match.end() == pos:
            break
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Pipeline:
    """Types one action: ``command ( '|' command )*`` over ``logger.Info``."""

    def __init__(self, tokens, action):
        self.tokens = tokens
        self.action = action
        self.pos = 0

    def check(self):
        result = self.pipeline()
        if self.pos < len(self.tokens):
            raise _Refused("unexpected %s in {{%s}}" % (self.tokens[self.pos][1], self.action), False)
        return result

    def pipeline(self):
        result = self.command(None)
        while self._peek() == ("punct", "|"):
            self.pos += 1
            result = self.command(result)
        return result

    def command(self, piped):
        operands = []
        while self.pos < len(self.tokens) and self._peek() not in (("punct", "|"), ("punct", ")")):
            operands.append(self.tokens[self.pos])
            self.pos += 1
            if operands[-1] == ("punct", "("):
                inner = self.pipeline()
                if self._peek() != ("punct", ")"):
                    raise _Refused("unclosed ( in {{%s}}" % self.action, False)
                self.pos += 1
                operands[-1] = ("typed", inner)
        if not operands:
            raise _Refused("missing value for command in {{%s}}" % self.action, False)
        head = operands[0]
        if head[0] == "word" and head[1] not in ("true", "false"):
            args = [self.operand(op) for op in operands[1:]] + ([piped] if piped else [])
            return self.call(head[1], args)
        if len(operands) > 1 or piped:
            raise _Refused("can't give argument to non-function %s in {{%s}}" % (head[1], self.action), False)
        return self.operand(head)

    def operand(self, token):
        kind, text = token
        if kind == "typed":
            return text
        if kind == "dot":
            return "info"
        if kind == "field":
            return self.field(text)
        if kind in ("str", "raw"):
            return "strconst"
        if kind == "num":
            return "intconst" if re.match(r"^[-+]?[0-9]+$", text) else "any"
        if kind == "word" and text in ("true", "false"):
            return "bool"
        if kind == "word":
            return self.call(text, [])
        raise _Refused("unexpected %s in {{%s}}" % (text, self.action), False)

    def field(self, chain):
        current = "info"
        for name in chain.lstrip(".").split("."):
            if current == "info" and name in INFO_FIELDS:
                current = INFO_FIELDS[name]
            elif current == "info" and name == "ExtraAttributes":
                raise _Refused("wrong number of args for ExtraAttributes in {{%s}}" % self.action, False)
            elif current == "map":
                current = "str"
            elif current == "time":
                raise _Refused(".ContainerCreated.%s: methods of the creation time are beyond this "
                               "check" % name, True)
            else:
                raise _Refused("can't evaluate field %s in {{%s}} (%s has none)" % (
                    name, self.action, _GO_TYPES.get(current, current)), False)
        return current

    def call(self, name, args):
        if name in _STRICT_WORDS:
            raise _Refused("{{%s}}: %s in a tag template is beyond this check" % (self.action, name), True)
        if name not in TEMPLATE_FUNCS:
            raise _Refused('function "%s" not defined in {{%s}}' % (name, self.action), False)
        params, variadic, result = TEMPLATE_FUNCS[name]
        if len(args) < len(params) or (variadic is None and len(args) > len(params)):
            raise _Refused("wrong number of args for %s: want %d got %d in {{%s}}" % (
                name, len(params), len(args), self.action), False)
        for index, arg in enumerate(args):
            want = params[index] if index < len(params) else variadic
            if not _fits(arg, want):
                raise _Refused("wrong type for value; expected %s; got %s in {{%s}}" % (
                    _GO_TYPES.get(want, want), _GO_TYPES.get(arg, arg), self.action), False)
        return result

    def _peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None


def _fits(value, want):
    """Whether Go passes a value of type ``value`` to a parameter of type ``want``."""
    if want == "any":
        return True
    if want == "str":
        return value in ("str", "strconst")
    if want == "int":
        return value in ("int", "intconst")
    if want == "sized":
        return value in ("str", "strconst", "strs", "map")
    return value == want
