#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The ABI gate: compare the built libtcpkit.so with lib/libtcpkit.abi.

    check-abi.py check  ABIDIFF NM READELF BASELINE LIBRARY HEADERS_DIR [OPEN_NODE]
    check-abi.py update ABIDW           BASELINE LIBRARY HEADERS_DIR

`update` writes the baseline (only at a release; see CONTRIBUTING.md).

Two baselines are checked: lib/libtcpkit.abi, the released 1.0 ABI, and
lib/libtcpkit-1.1.abi, recorded from the 1.1 library. While 1.1 is being
developed its node is still open: with OPEN_NODE (TCPKIT_1.1) symbols may
be added to that node although the baseline has it, but nothing in the
baseline may be removed or changed. Re-record the 1.1 baseline once every
1.1 addition has landed (`ninja -C BUILD abi-baseline-1.1`) and drop
OPEN_NODE from the test at the 1.1.0 release: from then on TCPKIT_1.1 is
closed too.

`check` fails on any change a program built against the baseline could
notice, and passes when symbols are only added in a new version node:

1. `abidiff --no-added-syms BASELINE LIBRARY --hd2 HEADERS_DIR` must exit 0.
   Its exit status is a bit field (abidiff(1), "RETURN VALUES"):
     1 ABIDIFF_ERROR, 2 ABIDIFF_USAGE_ERROR   -> the check could not run: fail;
     8 ABIDIFF_ABI_INCOMPATIBLE_CHANGE        -> a symbol was removed: fail;
     4 ABIDIFF_ABI_CHANGE                     -> fail too: libabigail sets only
       this bit (not 8) for a changed enumerator value, a changed parameter
       or return type, or a changed public type, all of which break callers.
   With --no-added-syms, added functions no longer set bit 4 (checked: a
   function added in TCPKIT_1.1 gives 4 without the option, 0 with it), and
   an enumerator appended to an enum is a harmless change, filtered by
   default. --hd2 (like --headers-dir when the baseline was written) limits
   types to those defined in include/: the struct layouts in lib/internal.h
   are private and may change.
2. Symbols added since the baseline must sit in a version node the baseline
   does not have: a released node (TCPKIT_1.0) never changes.

Without DWARF in the library (a build without -g) abidiff can only compare
symbols; the symbol checks still run, and the test is then reported as
skipped (exit 77) rather than passed. A sanitizer build is skipped as well.
"""

import re
import subprocess
import sys
import xml.etree.ElementTree as ET

SKIP = 77

ABIDW_FLAGS = [
    '--drop-private-types',   # internal structs stay declaration-only
    '--drop-undefined-syms',  # what libc provides is not our ABI
    '--no-corpus-path',       # no build-machine paths in the file
    '--no-comp-dir-path',
    '--no-show-locs',         # header line numbers may move freely
    '--no-elf-needed',        # the DT_NEEDED list is not ABI
    '--type-id-style', 'hash',  # ids stable across unrelated edits
]


def run(cmd):
    return subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          check=False)


def update(abidw, baseline, library, headers):
    proc = run([abidw, '--headers-dir', headers] + ABIDW_FLAGS
               + ['--out-file', baseline, library])
    sys.stdout.write(proc.stdout)
    return proc.returncode


def baseline_symbols(baseline):
    """{name: version} of the functions and variables in the baseline."""
    root = ET.parse(baseline).getroot()
    syms = {}
    for tag in ('elf-function-symbols', 'elf-variable-symbols'):
        for section in root.iter(tag):
            for sym in section.iter('elf-symbol'):
                syms[sym.get('name')] = sym.get('version', '')
    return syms


def library_symbols(nm, library):
    """{name: version} of the symbols the library exports (version nodes excluded)."""
    out = run([nm, '-D', '--defined-only', '--with-symbol-versions', library])
    if out.returncode != 0:
        raise SystemExit(f'nm failed:\n{out.stdout}')
    syms = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[1] == 'A':
            continue
        name, _, version = parts[2].partition('@')
        syms[name] = version.lstrip('@')
    return syms


def has_dwarf(readelf, library):
    out = run([readelf, '-S', '-W', library]).stdout
    return '.debug_info' in out


def sanitized(readelf, library):
    out = run([readelf, '-d', '-W', library]).stdout
    return re.search(r'lib(asan|ubsan|tsan|msan)', out) is not None


def check_nodes(old, new, open_node=None):
    """Check 2: every added symbol is in a node the baseline does not have
    (or in open_node, still being filled before its release)."""
    released = set(old.values()) - {open_node}
    ok = True
    for name in sorted(set(new) - set(old)):
        if new[name] in released:
            print(f'FAIL: {name} was added to the released node {new[name]}; '
                  'put it in a new node (see lib/libtcpkit.map)')
            ok = False
        else:
            print(f'ok: {name} added in new node {new[name] or "(unversioned)"}')
        if not new[name]:
            print(f'FAIL: {name} has no symbol version')
            ok = False
    for name in sorted(set(old) & set(new)):
        if old[name] != new[name]:
            print(f'FAIL: {name} moved from {old[name]} to {new[name]}')
            ok = False
    return ok


def check(abidiff, nm, readelf, baseline, library, headers, open_node=None):
    if sanitized(readelf, library):
        print('SKIP: sanitizer build; the ABI is checked in the plain build')
        return SKIP
    cmd = [abidiff, '--no-added-syms', baseline, library, '--hd2', headers]
    print('$ ' + ' '.join(cmd))
    proc = run(cmd)
    sys.stdout.write(proc.stdout)
    status = proc.returncode
    ok = True
    if status & 3:
        print(f'FAIL: abidiff could not compare (exit status {status})')
        ok = False
    elif status & 8:
        print(f'FAIL: incompatible ABI change (exit status {status}: a symbol was removed)')
        ok = False
    elif status & 4:
        print(f'FAIL: ABI change (exit status {status}: a changed function, type or '
              'enumerator value; see the report above)')
        ok = False
    if not check_nodes(baseline_symbols(baseline), library_symbols(nm, library), open_node):
        ok = False
    if not ok:
        print('The ABI of TCPKIT_1.0 must not change. Add API in a new version node '
              '(CONTRIBUTING.md); regenerate lib/libtcpkit.abi only at a release.')
        return 1
    if not has_dwarf(readelf, library):
        print('SKIP: no DWARF in the library (build with -g): only symbols were compared')
        return SKIP
    print('ABI compatible with the baseline')
    return 0


def main(argv):
    if len(argv) in (8, 9) and argv[1] == 'check':
        return check(*argv[2:])
    if len(argv) == 6 and argv[1] == 'update':
        return update(*argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
