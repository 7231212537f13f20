#!/usr/bin/env python3
"""check_doc_links.py DIR: every relative link in DIR/*.md names a file there.

Markdown links and images ([text](target), ![alt](target), the text over
several lines too), reference definitions ([id]: target) and HTML src/href,
outside code blocks and code spans.  A link with a scheme (https:, mailto:)
or to an anchor of the page itself is not a file; a relative one is looked
for from the page's folder, as a browser or a Markdown viewer would: a
`../README.md` in docs/ names nothing in share/doc/thoth once installed.
Prints each dead link (file:line: target) and exits 1 if there is one."""
import os
import re
import sys
from urllib.parse import unquote

# [text](<a name with spaces.md>) or [text](target "title")
LINK = re.compile(r'\]\(\s*(?:<([^>\n]+)>|([^)\s]+))')
REFDEF = re.compile(r'^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)', re.M)
HTML = re.compile(r'<(?:img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*"([^"]+)"', re.I)


def blank(m):
    """The match's text as spaces, its newlines kept (line numbers stay)."""
    return re.sub(r'[^\n]', ' ', m.group(0))


def dead_links(folder):
    dead = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith('.md'):
            continue
        with open(os.path.join(folder, name), encoding='utf-8') as f:
            text = f.read()
        text = re.sub(r'^(```|~~~).*?^\1[^\n]*$', blank, text, flags=re.M | re.S)
        text = re.sub(r'(`+)[^`].*?\1', blank, text, flags=re.S)
        # an HTML comment is not shown: a link in it is no reader's dead end
        text = re.sub(r'<!--.*?-->', blank, text, flags=re.S)
        for rx in (LINK, REFDEF, HTML):
            for m in rx.finditer(text):
                target = next(g for g in m.groups() if g is not None)
                if re.match(r'[A-Za-z][A-Za-z0-9+.-]*:', target) or target.startswith('#'):
                    continue
                # a viewer decodes %20 (a name with a space) before it looks
                path = unquote(target.split('#', 1)[0].split('?', 1)[0])
                if not os.path.exists(os.path.join(folder, path)):
                    line = text.count('\n', 0, m.start()) + 1
                    dead.append(f'{os.path.join(folder, name)}:{line}: {target}')
    return dead


def main():
    if len(sys.argv) != 2:
        print('usage: check_doc_links.py DIR', file=sys.stderr)
        return 2
    dead = dead_links(sys.argv[1])
    for d in dead:
        print(f'dead link: {d}', file=sys.stderr)
    return 1 if dead else 0


if __name__ == '__main__':
    sys.exit(main())
