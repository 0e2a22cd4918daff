#!/usr/bin/env python3
# Kept in the repository so CI runs it from a clean clone; the same check as
# ../shared/tools/modcycles.py (run from the crate root; exit 1 when there is a cycle).
"""Print the import cycles (strongly connected components) among a Rust crate's .rs files.

File A depends on file B when A takes a name defined in B through a `use` (brace groups,
`as`, `self`/`super`/`crate`, globs) or a qualified path in code (`crate::a::B`); a name
imported through a `pub use` re-export counts for the file that defines it. Not edges:
a `pub use` the file does not use itself, `mod x;`, other crates, comments, literals and
`#[cfg(test)]` code. Files map to modules by the standard layout (`x.rs`, `x/mod.rs`).
"""
import argparse, json, os, re, sys

LITERAL = re.compile(r"//[^\n]*|(?P<block>/\*)|(?<!\w)[bc]?r(?P<hashes>#*)\"[\s\S]*?\"(?P=hashes)"
                     r"|(?:(?<!\w)[bc])?\"(?:[^\"\\]|\\[\s\S])*\""
                     r"|'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.)|[^\\'\n])'")
COMMENT_MARK = re.compile(r"/\*|\*/")
TEST_ATTR = re.compile(r"#\[cfg\(\s*(?:all\(\s*)?test\b[^\]]*\]\s*(?:#\[[^\]]*\]\s*)*")
MOD_DECL = re.compile(r"(?:pub\b(?:\s*\([^)]*\))?\s*)?mod\s+(\w+)\s*;")
INLINE_MOD = re.compile(r"\bmod\s+(\w+)\s*\{")
ITEM_NAME = r"\b(?:struct|enum|union|fn|const|static|trait|type|mod)\s+(?:mut\s+)?(?!fn\b)(\w+)"
ITEM = re.compile(r"[{}]|" + ITEM_NAME + r"|\bmacro_rules!\s*(\w+)")
USE = re.compile(r"(?<![\w$])(pub\b(?:\s*\([^)]*\))?\s*)?use\s+((?:::)?[\w{][^;]*);")
USE_TOKEN = re.compile(r"::|[{},*]|\w+")
PATH = re.compile(r"(?<![\w:.$])(?:[A-Za-z_]\w*::)+[A-Za-z_]\w*")
NAME = re.compile(r"(?<![\w.:'$])([A-Za-z_]\w*)\s*([(!])?")
EXTERNAL = "<external>"

def spaces(text):
    return re.sub(r"[^\n]", " ", text)

def blank(text):
    """Text with comments and string/char literals turned to spaces (newlines kept, 'a kept)."""
    out, pos = [], 0
    while (m := LITERAL.search(text, pos)):
        end = m.end()
        if m["block"]:   # block comments nest
            depth = 0
            for mark in COMMENT_MARK.finditer(text, m.start()):
                depth += 1 if mark[0] == "/*" else -1
                if depth == 0:
                    break
            end = mark.end() if depth == 0 else len(text)
        out += [text[pos:m.start()], spaces(text[m.start():end])]
        pos = end
    return "".join(out) + text[pos:]

def item_end(code, start):
    """Offset just past the item that starts at `start`: its `;` or its closing `}`."""
    depth = 0
    for m in re.finditer(r"[;{}()\[\]]", code[start:]):
        depth += (m[0] in "{([") - (m[0] in "})]")
        if depth < 0 or (depth == 0 and m[0] in ";}"):
            return start + (m.start() if depth < 0 else m.end())
    return len(code)

def strip_tests(code):
    """(code with `#[cfg(test)]` items blanked, names of `#[cfg(test)] mod x;` declarations)."""
    test_mods, pos = [], 0
    while (m := TEST_ATTR.search(code, pos)):
        pos = item_end(code, m.end())
        if (decl := MOD_DECL.match(code, m.end())) and decl.end() == pos:
            test_mods.append(decl[1])
        code = code[:m.start()] + spaces(code[m.start():pos]) + code[pos:]
    return code, test_mods

def top_level_items(code):
    """Names of the items a file defines outside any braces (inline modules included)."""
    depth, names = 0, set()
    for m in ITEM.finditer(code):
        depth += (m[0] == "{") - (m[0] == "}")
        if depth == 0 and m[0] not in "{}":
            names.add(m[1] or m[2])
    return names

def scope_finder(code):
    """Function giving the names of the inline `mod name { ... }` blocks around an offset."""
    spans = [(m.start(), item_end(code, m.start()), m[1]) for m in INLINE_MOD.finditer(code)]
    return lambda at: tuple(name for start, end, name in spans if start < at < end)

def expand_use(tree):
    """(path, name, alias) for each leaf of a use tree; a glob's name is '*'."""
    out, bases, path, alias, pending = [], [], [], None, False
    tokens = USE_TOKEN.findall(tree)
    for tok in ([] if tokens[:1] == ["::"] else tokens + [","]):   # `use ::x` is another crate
        if tok in ",}" and pending:
            name = path[-1]
            if name == "self" and len(path) > 1:   # `a::{self}` is the module a
                path, name = path[:-1], path[-2]
            out.append((tuple(path[:-1] if name == "*" else path), name, alias or name))
        if tok == "{":
            bases.append(len(path))
        elif tok in ",}":
            path, alias, pending = path[:bases[-1] if bases else 0], None, False
            if tok == "}" and bases:
                bases.pop()
        elif alias == "":   # the word after `as`
            alias = tok
        elif tok == "as":
            alias = ""
        elif tok != "::":
            path, pending = path + [tok], True
    return out

class Crate:
    """The .rs files under one folder: their modules, items, imports and code."""

    def __init__(self, src):
        self.mod, self.by_mod, self.code, test_only = {}, {}, {}, set()
        for root, dirs, names in os.walk(src):
            dirs.sort()
            for name in sorted(n for n in names if n.endswith(".rs")):
                path = os.path.relpath(os.path.join(root, name), src).replace(os.sep, "/")
                with open(os.path.join(root, name), encoding="utf-8", errors="replace") as fh:
                    code, test_mods = strip_tests(blank(fh.read()))
                parts = path[:-3].split("/")
                if parts[-1] == "mod" or parts in (["lib"], ["main"]):
                    parts.pop()
                self.mod[path], self.code[path] = tuple(parts), code
                self.by_mod.setdefault(tuple(parts), path)   # lib.rs comes before main.rs
                test_only.update(tuple(parts) + (t,) for t in test_mods)
        for path in list(self.code):   # files at or below a test-only module are test code
            if any(self.mod[path][:len(t)] == t for t in test_only):
                del self.code[path]
                self.by_mod.pop(self.mod[path], None)
        self.uses, self.rest, self.scope, self.defs, self.imports, self.globs, self.known = (
            {} for _ in range(7))
        for path, code in self.code.items():
            self.scope[path] = scope_finder(code)
            self.uses[path] = [(p, n, a, bool(m[1]), self.scope[path](m.start()))
                               for m in USE.finditer(code) for p, n, a in expand_use(m[2])]
            self.rest[path] = USE.sub(lambda m: spaces(m[0]), code)   # the code besides `use`
            self.defs[path] = top_level_items(code)
            self.imports[path] = {a: p for p, n, a, _, _ in self.uses[path] if n != "*"}
            self.globs[path] = [(p, s) for p, n, _, _, s in self.uses[path] if n == "*"]

    def absolute(self, path, segs, scope=(), depth=0):
        """Crate-absolute form of path `segs` as written in file `path`, or None if external."""
        cur, head = self.mod[path] + scope, segs[0]   # scope: inline modules around the path
        if depth > 8:
            return None
        if head == "crate":
            return segs[1:]
        if head == "self":
            return cur + segs[1:]
        if head == "super":
            n = next((i for i, s in enumerate(segs) if s != "super"), len(segs))
            return cur[:len(cur) - n] + segs[n:] if n <= len(cur) else None
        if cur + (head,) in self.by_mod:   # a child module
            return cur + segs
        if head in self.defs[path]:   # an item of this file (an inline module, an enum)
            return self.mod[path] + segs
        if head in self.imports[path]:
            return self.absolute(path, self.imports[path][head] + segs[1:], scope, depth + 1)
        for glob, at in self.globs[path] if depth == 0 else ():   # a module a glob brings in
            base = self.absolute(path, glob, at, depth + 1)
            if base is not None and base + (head,) in self.by_mod:
                return base + segs
        return None

    def resolve(self, path, segs, scope=(), seen=None):
        """(file, name, is a module) that `segs` in file `path` refers to, or None."""
        mods = self.absolute(path, segs, scope)
        if mods is None:
            return None
        k = max((k for k in range(len(mods) + 1) if mods[:k] in self.by_mod), default=-1)
        if k < 0:
            return None
        home, rest = self.by_mod[mods[:k]], mods[k:]   # the deepest module file on the path
        if not rest:
            return home, mods[-1] if mods else "crate", True
        where = self.lookup(home, rest[0], set() if seen is None else seen)
        return None if where == EXTERNAL else (where or home, rest[0], False)

    def lookup(self, home, name, seen):
        """File defining `name` as seen from module file `home`, EXTERNAL, or None if unknown."""
        key, top, found = (home, name), not seen, None
        if key in self.known or key in seen:
            return self.known.get(key)
        seen.add(key)
        if name in self.defs[home] and self.mod[home] + (name,) not in self.by_mod:
            found = home   # an item of `home` (not `mod x;`: `mod x; use x::x;` imports fn x)
        elif name in self.imports[home]:
            hit = self.resolve(home, self.imports[home][name], (), seen)
            found = hit[0] if hit else EXTERNAL
        else:
            for glob, scope in self.globs[home]:
                hit = self.resolve(home, glob, scope, seen)
                if hit and hit[2] and (found := self.lookup(hit[0], name, seen)):
                    break
        if found or top:   # a miss below the top may only be a search cut short by `seen`
            self.known[key] = found
        return found

    def edges(self):
        """{file: {file: names}}: the names each file takes from each other file."""
        items, modules = {}, {}
        def add(path, hit):
            if hit and hit[0] != path:
                (modules if hit[2] else items).setdefault((path, hit[0]), set()).add(hit[1])
        for path, rest in self.rest.items():
            for segs, name, alias, public, scope in self.uses[path]:
                reexport = public and not re.search(r"(?<![\w.])%s\b" % re.escape(alias), rest)
                if name != "*" and not reexport:   # a pure re-export: importers skip past it
                    add(path, self.resolve(path, segs, scope))
            for m in PATH.finditer(rest):
                add(path, self.resolve(path, tuple(m[0].split("::")), self.scope[path](m.start())))
            # names a glob brings in, as this file uses them: types and constants, and calls
            used = {m[1] for m in NAME.finditer(rest) if m[1][0].isupper() or m[2]}
            used -= set(re.findall(ITEM_NAME, self.code[path])) | set(self.imports[path])
            for glob, scope in self.globs[path]:
                hit = self.resolve(path, glob, scope)
                for name in sorted(used) if hit and hit[2] else ():
                    where = self.lookup(hit[0], name, set())
                    add(path, None if where in (None, EXTERNAL) else (where, name, False))
        graph = {path: {} for path in self.code}
        for a, b in set(items) | set(modules):   # module names only where no item is named
            graph[a][b] = sorted(items.get((a, b)) or modules[(a, b)])
        return graph

def components(graph):
    """Strongly connected components of `graph` ({node: {node: ...}}) with 2 or more nodes."""
    reach = {}
    for start in graph:   # every node reachable from `start` in one or more steps
        reach[start], todo = set(), [start]
        while todo:
            for w in graph[todo.pop()]:
                if w not in reach[start]:
                    reach[start].add(w)
                    todo.append(w)
    return {tuple(sorted(w for w in reach[v] if v in reach[w])) for v in graph if v in reach[v]}

def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="modcycles", epilog="exit status: 0 no cycles, 1 cycles found, 2 usage error",
        description="Run from a Rust crate's root: print each group of .rs files that import "
        "each other (an import cycle), with the names on each arrow, then a count line.")
    ap.add_argument("--src", default="src", metavar="DIR", help="source folder (default: src)")
    ap.add_argument("--json", action="store_true",
                    help="print a JSON list of {files, arrows: [{from, to, names}]} instead")
    args = ap.parse_args(argv)
    crate = Crate(args.src) if os.path.isdir(args.src) else None
    if not (crate and crate.code):
        ap.error("no .rs files under %s (run from a crate's root, or pass --src DIR)" % args.src)
    graph = crate.edges()
    show = lambda f: os.path.normpath(os.path.join(args.src, f))
    cycles = sorted(components(graph), key=lambda c: (-len(c), c))
    found = [{"files": [show(f) for f in c],
              "arrows": [{"from": show(a), "to": show(b), "names": graph[a][b]}
                         for a in c for b in sorted(graph[a]) if b in c]} for c in cycles]
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        for i, cycle in enumerate(found, 1):
            print("cycle %d: %d files: %s" % (i, len(cycle["files"]), ", ".join(cycle["files"])))
            for arrow in cycle["arrows"]:
                print("  %s -> %s: %s" % (arrow["from"], arrow["to"], ", ".join(arrow["names"])))
        print("cycles: %d (largest: %d files)" % (len(found), max(map(len, cycles), default=0)))
    return 1 if found else 0

if __name__ == "__main__":
    sys.exit(main())
