"""Stub pages shared by the end-to-end tests."""

from __future__ import annotations

#: Seven sections: nested items, an item with options, the shorthand, hand-written text
#: around the marker.
GUIDE = """
---
title: Configuring Foo
aigen:
  brief: Explain how to configure Foo for a first deployment.
  audience: platform engineers new to Foo
  tone: precise, friendly
  words: 30
  outline:
    - Overview
    - title: The config file
      words: 50
      hint: Show a minimal foo.toml and explain each key.
      sections:
        - Environment variables
        - title: Secrets
          hint: Never put tokens in foo.toml.
    - Troubleshooting: [Logs, Common errors]
---
# Configuring Foo

Hand-written text stays exactly where it is.

<!-- aigen -->

More hand-written text.
"""

#: The hint of "The config file > Secrets", the section tests edit.
SECRETS_HINT = "Never put tokens in foo.toml."

#: Three sections and nothing else; ``.format(brief=..., title=...)``.
SMALL = """\
---
aigen:
  brief: {brief}
  outline: [One, Two, Three]
---
# {title}
"""
