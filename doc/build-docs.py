#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Build the libtcpkit reference: run Doxygen, then give every function its
own section-3 man page.

    build-docs.py DOXYGEN DOXYFILE OUTDIR [HEADER]

Doxygen writes HTML to OUTDIR/html and man pages to OUTDIR/man3. Any output
from Doxygen (it runs with QUIET = YES, so only warnings and errors print)
fails the build: an undocumented function must not slip through.

For a single header, Doxygen 1.9.4 puts every function into the header's
page (man3/tcpkit.h.3) and, with MAN_LINKS = YES, adds one-line pages like
man3/tcpkit_connect.3 that only `.so` the header's page, so `man 3
tcpkit_connect` would show the whole header. This script replaces each
function's link page with a real page (NAME, SYNOPSIS, DESCRIPTION, SEE
ALSO) cut from the header's page. Types, enum values and macros keep their
link pages.

With HEADER given, it also checks that every function declared there got a
page of its own that says since which version it exists.
"""

import pathlib
import re
import shutil
import subprocess
import sys

HEADER_PAGE = 'tcpkit.h.3'


def run_doxygen(doxygen, doxyfile, outdir):
    """Runs Doxygen with OUTPUT_DIRECTORY forced to outdir; fails on any output."""
    for sub in ('html', 'man3'):
        shutil.rmtree(outdir / sub, ignore_errors=True)
    outdir.mkdir(parents=True, exist_ok=True)
    # A later assignment wins, so the configured file can be reused as is.
    config = doxyfile.read_text() + f'\nOUTPUT_DIRECTORY = "{outdir}"\n'
    proc = subprocess.run([doxygen, '-'], input=config, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0 or proc.stdout.strip():
        sys.stderr.write(proc.stdout)
        sys.stderr.write(f'doxygen: exit status {proc.returncode}; '
                         'warnings are errors for the reference docs\n')
        return False
    return True


def unquote(arg):
    """The text of a `.RI "..."` or `.SS "..."` line."""
    arg = arg.strip()
    if arg.startswith('"') and arg.endswith('"'):
        arg = arg[1:-1]
    return arg.strip()


def function_briefs(lines):
    """Maps each function name to its brief, from the Functions summary."""
    briefs = {}
    in_functions = False
    for i, line in enumerate(lines):
        if line.startswith('.SS') or line.startswith('.SH'):
            in_functions = line.startswith('.SS "Functions"')
            continue
        if not in_functions or not line.startswith('.RI '):
            continue
        m = re.search(r'\\fB(tcpkit_\w+)\\fP \(', line)
        if m and i + 2 < len(lines) and lines[i + 1] == '.br' and lines[i + 2].startswith('.RI '):
            briefs[m.group(1)] = unquote(lines[i + 2][4:])
    return briefs


def function_sections(lines):
    """Yields (name, prototype, body lines) from "Function Documentation"."""
    start = None
    for i, line in enumerate(lines):
        if line.startswith('.SH "Function Documentation"'):
            start = i + 1
            break
    if start is None:
        return
    current = None
    for line in lines[start:]:
        if line.startswith('.SH'):
            break
        if line.startswith('.SS '):
            if current:
                yield current
            proto = unquote(line[4:])
            m = re.search(r'(tcpkit_\w+) \(', proto)
            current = (m.group(1) if m else None, proto, [])
            continue
        if current:
            current[2].append(line)
    if current:
        yield current


def write_function_page(man3, th_fields, name, brief, proto, body):
    page = [
        f'.TH "{name}" 3 {th_fields}',
        '.ad l',
        '.nh',
        '.SH NAME',
        f'{name} \\- {brief}',
        '.SH SYNOPSIS',
        '.nf',
        '\\fB#include <tcpkit\\&.h>\\fP',
        '',
        proto + ';',
        '.fi',
        '.PP',
        'Link with \\fI\\-ltcpkit\\fP (pkg-config: \\fIlibtcpkit\\fP)\\&.',
        '.SH DESCRIPTION',
    ]
    page += body
    page += ['.SH "SEE ALSO"', '\\fBtcpkit\\&.h\\fP(3)', '']
    (man3 / f'{name}.3').write_text('\n'.join(page))


def split_man_pages(man3):
    lines = (man3 / HEADER_PAGE).read_text().splitlines()
    # Keep the header page's date, version and manual title.
    th = re.match(r'\.TH "[^"]*" 3 (.*?)(\s*\\".*)?$', lines[0])
    th_fields = th.group(1) if th else '"" "" "libtcpkit"'
    briefs = function_briefs(lines)
    written = []
    for name, proto, body in function_sections(lines):
        if not name:
            continue
        write_function_page(man3, th_fields, name, briefs.get(name, ''), proto, body)
        written.append(name)
    return written


def declared_functions(header):
    text = re.sub(r'/\*.*?\*/', ' ', header.read_text(), flags=re.S)
    return set(re.findall(r'\bTCPKIT_EXPORT\b[^;{]*?\b(tcpkit_\w+)\s*\(', text))


def check_pages(man3, header):
    ok = True
    for name in sorted(declared_functions(header)):
        page = man3 / f'{name}.3'
        text = page.read_text() if page.exists() else ''
        if '.SH NAME' not in text:
            print(f'{name}: no man page of its own ({page})', file=sys.stderr)
            ok = False
        elif '\\fBSince\\fP' not in text:
            print(f'{name}: man page has no "Since" (add @since to its comment)', file=sys.stderr)
            ok = False
    return ok


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    doxygen, doxyfile, outdir = argv[1], pathlib.Path(argv[2]), pathlib.Path(argv[3]).resolve()
    if not run_doxygen(doxygen, doxyfile, outdir):
        return 1
    written = split_man_pages(outdir / 'man3')
    if not written:
        print(f'no function found in {outdir / "man3" / HEADER_PAGE}', file=sys.stderr)
        return 1
    if len(argv) == 5 and not check_pages(outdir / 'man3', pathlib.Path(argv[4])):
        return 1
    print(f'doxygen: no warnings; {len(written)} functions, each with its own man page')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
