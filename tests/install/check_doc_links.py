#!/usr/bin/env python3
"""check_doc_links.py DIR: every relative link in DIR/*.md names a file there.

Markdown links and images ([text](target), ![alt](target), the text over
several lines too), reference definitions ([id]: target) and HTML src/href,
outside code blocks and code spans.  A link with a scheme (https:, mailto:)
is not a file; a relative one (or a #fragment alone: this page) is looked
for from the page's folder, as a browser or a Markdown viewer would: a
`../README.md` in docs/ names nothing in share/doc/thoth once installed.
A #fragment must name a heading of that page (as GitHub names it) or an
id= / name= in it.
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


def anchors(path, cache={}):
    """The #fragments PATH has: its headings as GitHub names them
    (lowercased, punctuation dropped, spaces as '-', a repeat '-1', '-2'),
    and HTML id= / name= attributes."""
    if path not in cache:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        text = re.sub(r'^(```|~~~).*?^\1[^\n]*$', '', text, flags=re.M | re.S)
        found, seen = set(), {}
        for h in re.findall(r'^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$', text, re.M):
            h = re.sub(r'<[^>]*>|`|\[|\]\([^)]*\)', '', h)
            slug = re.sub(r'[^\w\- ]', '', h.strip().lower()).replace(' ', '-')
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            found.add(slug if n == 0 else f'{slug}-{n}')
        found.update(re.findall(r'\b(?:id|name)\s*=\s*"([^"]+)"', text))
        cache[path] = found
    return cache[path]


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
                if re.match(r'[A-Za-z][A-Za-z0-9+.-]*:', target):
                    continue
                # a viewer decodes %20 (a name with a space) before it looks
                path = unquote(target.split('#', 1)[0].split('?', 1)[0])
                frag = unquote(target.split('#', 1)[1]) if '#' in target else ''
                full = os.path.join(folder, path or name)
                # a #fragment names a heading or an id of that page (else
                # the viewer opens the page at its top: a link that lies)
                if not os.path.exists(full) or (frag and full.endswith('.md') and os.path.isfile(full)
                                               and frag not in anchors(full)):
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
