"""Which language a page is written in, and how the prompts name it.

A page's language is its stub's ``language``, else the locale mkdocs-static-i18n gives
the page, else the theme's ``language`` (Material) or ``locale`` (MkDocs' themes). English
is what the packaged templates are written in, so an English page states nothing: its
requests, and every key made from them, stay those of a site that never set a language.
"""

from __future__ import annotations

import re
from typing import Any

#: ``fr``, ``pt-BR``, ``zh_Hant``: a language code with optional region or script.
LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*\Z")

# English names of the languages MkDocs' and Material's themes are translated into (the
# most common ones); any other code is named by itself, which models understand too.
_NAMES = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "ca": "Catalan",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "es": "Spanish",
    "et": "Estonian",
    "fa": "Persian",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "nb": "Norwegian Bokmål",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "pt-br": "Brazilian Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sr": "Serbian",
    "sv": "Swedish",
    "th": "Thai",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "zh": "Chinese",
    "zh-hans": "Simplified Chinese",
    "zh-hant": "Traditional Chinese",
    "zh-tw": "Traditional Chinese",
}


def normalise(code: str | None) -> str | None:
    """``pt_BR`` -> ``pt-BR``; English (the templates' own language) and blank -> ``None``."""
    if not code or not code.strip():
        return None
    code = code.strip().replace("_", "-")
    if code.split("-")[0].lower() == "en":
        return None
    return code


def language_name(code: str) -> str:
    """``French`` for ``fr``, ``Brazilian Portuguese`` for ``pt-BR``; else the code."""
    key = code.lower()
    return _NAMES.get(key) or _NAMES.get(key.split("-")[0]) or code


def theme_language(config: Any) -> str | None:
    """The site's language from its theme: Material's ``language``, MkDocs' ``locale``."""
    theme = getattr(config, "theme", None)
    if theme is None:
        return None
    for name in ("language", "locale"):
        try:
            value = theme[name]
        except (KeyError, TypeError):
            continue
        if value:
            return str(value)
    return None


def page_language(
    explicit: str | None, i18n_locale: str | None, site_default: str | None
) -> str | None:
    """The first of the stub's, the i18n plugin's and the theme's, English as ``None``."""
    for candidate in (explicit, i18n_locale, site_default):
        if candidate:
            return normalise(candidate)
    return None
