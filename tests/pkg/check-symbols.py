#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Symbols in the header, the version script and the library are one set.

    check-symbols.py NM READELF LIBRARY HEADER MAP

In the spirit of curl's symbols-in-versions check, this fails when:
- a function is declared in include/tcpkit.h but not exported, or exported
  but not declared, or listed in lib/libtcpkit.map but not both;
- a declared function lacks TCPKIT_EXPORT, or its doc comment lacks a
  `@par Thread safety:` paragraph or an `@since X.Y` that matches its map
  node TCPKIT_X.Y;
- an exported symbol is not versioned, or its version is not the map node
  that lists it (e.g. tcpkit_connect@@TCPKIT_1.0);
- a name is listed twice in the map, or the map does not end in `local: *;`;
- the SONAME is not libtcpkit.so.1.
"""

import re
import subprocess
import sys

SONAME = 'libtcpkit.so.1'


def strip_c_comments(text):
    return re.sub(r'/\*.*?\*/', lambda m: '\n' * m.group(0).count('\n'), text, flags=re.S)


def header_functions(header_text):
    """{name: (exported, since, thread_doc)} for every function declared in the header."""
    code = strip_c_comments(header_text)
    code = re.sub(r'^\s*#.*$', '', code, flags=re.M)  # no macros
    names = set(re.findall(r'\b(tcpkit_\w+)\s*\(', code))
    result = {}
    for name in names:
        decl = re.search(r'(?:^|;|})\s*([^;{}]*\b' + name + r'\s*\([^;{]*\)\s*;)', code)
        exported = bool(decl and re.search(r'\bTCPKIT_EXPORT\b', decl.group(1)))
        # The doc comment is the last /** */ block before the declaration.
        doc = re.search(r'/\*\*((?:(?!\*/).)*)\*/\s*TCPKIT_EXPORT\b[^;]*?\b' + name + r'\s*\(',
                        header_text, flags=re.S)
        since = None
        thread_doc = False
        if doc:
            m = re.search(r'[@\\]since\s+(\d+\.\d+)', doc.group(1))
            since = m.group(1) if m else None
            thread_doc = re.search(r'[@\\]par\s+Thread safety:', doc.group(1)) is not None
        result[name] = (exported, since, thread_doc)
    return result


def map_nodes(map_text):
    """[(node, [names])] in file order, and the problems found."""
    text = re.sub(r'/\*.*?\*/', ' ', map_text, flags=re.S)
    text = re.sub(r'#.*$', '', text, flags=re.M)
    nodes, problems, seen = [], [], {}
    for m in re.finditer(r'(\w[\w.]*)\s*\{(.*?)\}\s*([\w.]*)\s*;', text, flags=re.S):
        node, body = m.group(1), m.group(2)
        names = []
        scope = 'global'
        for item in body.split(';'):
            item = item.strip()
            label = re.match(r'(global|local)\s*:\s*(.*)', item, flags=re.S)
            if label:
                scope, item = label.group(1), label.group(2).strip()
            if not item:
                continue
            if scope == 'local':
                if item != '*':
                    problems.append(f'{node}: unexpected local entry {item!r}')
                continue
            if item in seen:
                problems.append(f'{item} is listed in both {seen[item]} and {node}')
            seen[item] = node
            names.append(item)
        nodes.append((node, names))
    if not re.search(r'local\s*:\s*\*\s*;', text):
        problems.append('the map must hide everything else with "local: *;"')
    return nodes, problems


def exported_symbols(nm, library):
    out = subprocess.run([nm, '-D', '--defined-only', '--with-symbol-versions', library],
                         text=True, capture_output=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[1] == 'A':  # 'A' entries name the version nodes
            continue
        name, sep, version = parts[2].partition('@')
        syms[name] = (parts[1], version if sep else '')
    return syms


def soname(readelf, library):
    out = subprocess.run([readelf, '-d', '-W', library], text=True, capture_output=True,
                         check=True).stdout
    m = re.search(r'\(SONAME\)\s+Library soname: \[([^\]]+)\]', out)
    return m.group(1) if m else None


def main(argv):
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    nm, readelf, library, header, mapfile = argv[1:]
    declared = header_functions(open(header, encoding='utf-8').read())
    nodes, problems = map_nodes(open(mapfile, encoding='utf-8').read())
    in_map = {name: node for node, names in nodes for name in names}
    exported = exported_symbols(nm, library)

    for name in sorted(set(declared) | set(in_map) | set(exported)):
        where = [label for label, s in (('header', declared), ('map', in_map),
                                        ('library', exported)) if name in s]
        if len(where) != 3:
            problems.append(f'{name}: only in {", ".join(where)} '
                            '(header, map and library must list the same functions)')

    for name, (exported_attr, since, thread_doc) in sorted(declared.items()):
        if not exported_attr:
            problems.append(f'{name}: declared without TCPKIT_EXPORT')
        if not thread_doc:
            problems.append(f'{name}: doc comment has no "@par Thread safety:" paragraph')
        node = in_map.get(name)
        if since is None:
            problems.append(f'{name}: doc comment has no @since')
        elif node and node != 'TCPKIT_' + since:
            problems.append(f'{name}: @since {since} but listed in map node {node}')

    for name, (kind, version) in sorted(exported.items()):
        if kind not in ('T', 'W', 'i'):
            problems.append(f'{name}: exported non-function symbol (type {kind})')
        if not version.startswith('@'):
            problems.append(f'{name}: not the default version (got {version!r}, want @@NODE)')
        version = version.lstrip('@')
        if name in in_map and version != in_map[name]:
            problems.append(f'{name}: exported as version {version!r}, map node {in_map[name]}')

    got = soname(readelf, library)
    if got != SONAME:
        problems.append(f'SONAME is {got!r}, want {SONAME!r}')

    print(f'{len(declared)} declared, {len(in_map)} in the map, {len(exported)} exported, '
          f'SONAME {got}')
    for p in problems:
        print('FAIL: ' + p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
