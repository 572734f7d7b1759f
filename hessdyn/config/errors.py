"""Errors that the command line turns into one clear line."""

from __future__ import annotations


class HessdynError(Exception):
    """A user-facing error: its message is one line that says what is wrong and what to do."""


class DirectoryInUse(HessdynError):
    """Another process holds the folder's write lock (see hessdyn.store.exclusive_dir); nothing was written.
    ``holder`` says who (``hessdyn train (pid 12 on host)``)."""

    def __init__(self, message: str, holder: str = "another process") -> None:
        self.holder = holder
        super().__init__(message)


class ConfigValueError(HessdynError, ValueError):
    """A config value that has the right type but an invalid value."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"invalid value for '{key}': {problem}")


def _innermost(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def _first_line(text: str) -> str:
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return str(text).strip()


def describe_config_error(exc: BaseException, valid_keys: dict[str, list[str]] | None = None) -> str:
    """One line for a Hydra/OmegaConf composition or validation error.

    ``valid_keys`` maps a config node path (``"model"``, ``""`` for the root) to its valid keys, used to
    list the choices when a key is unknown.
    """
    import re

    if isinstance(exc, HessdynError):
        return str(exc)
    text = str(exc)
    m = re.search(r"Could not find '([^']+)'", text)
    if m and "Available options in" in text:
        group, _, choice = m.group(1).rpartition("/")
        options = re.findall(r"^\t(\S+)$", text.split("Available options in", 1)[1], flags=re.M)
        return f"unknown {group} '{choice}' (choose from: {', '.join(options)})"
    if m:
        group, _, choice = m.group(1).rpartition("/")
        return f"unknown {group or 'config'} '{choice}'"
    inner = _innermost(exc)
    inner_text = str(inner)
    full_key = getattr(inner, "full_key", None)
    m = re.search(r"Could not override '([^']+)'", text)
    key = m.group(1) if m else full_key
    if m or "not in" in inner_text and "Key '" in inner_text:
        key = key or ""
        parent, _, leaf = key.rpartition(".")
        choices = (valid_keys or {}).get(parent)
        hint = f" (valid keys{' of ' + parent if parent else ''}: {', '.join(choices)})" if choices else ""
        return f"unknown config key '{key}'{hint}"
    m = re.search(r"Invalid value '([^']*)', expected one of \[([^\]]*)\]", inner_text)
    if m:
        key = full_key or _override_key(text)
        return f"invalid value for '{key}': '{m.group(1)}' (choose from: {m.group(2)})"
    m = re.search(r"Value '([^']*)' (?:of type '[^']*' )?could not be converted to (\w+)", inner_text)
    if m:
        key = full_key or _override_key(text)
        return f"invalid value for '{key}': '{m.group(1)}' is not a valid {m.group(2).lower()}"
    if (
        "Error parsing override" in text
        or "mismatched input" in inner_text
        or "no viable alternative" in inner_text
    ):
        return f"cannot parse override: {_first_line(text)} (syntax: key=value, group=option, -m for sweeps a=1,2)"
    line = _first_line(inner_text) or _first_line(text)
    if full_key and full_key not in line:
        line = f"{line} (key '{full_key}')"
    return line


def _override_key(text: str) -> str:
    import re

    m = re.search(r"override ([^=\s]+)=", text)
    return m.group(1) if m else "?"


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM; Ctrl-C raises a plain KeyboardInterrupt): finished work is
    kept and rerunning the same command continues it. ``signal_name`` is ``SIGTERM`` or ``SIGINT``."""

    def __init__(self, signal_name: str = "SIGINT") -> None:
        self.signal_name = signal_name
        super().__init__(signal_name)


def interrupt_signal(exc: BaseException) -> str:
    """``SIGTERM`` or ``SIGINT`` (Ctrl-C) of an interruption."""
    return getattr(exc, "signal_name", "SIGINT")


def unparsable_override(override: str) -> str:
    """One line for an override Hydra's grammar cannot read, with how to quote it."""
    key, _, value = override.partition("=")
    if value.startswith("[") and ("/" in value or "=" in value[1:]):
        hint = (
            "run folders' paths hold '=' and ',': quote each path, and the whole argument for the shell: "
            f"\"{key}=['PATH_A','PATH_B']\""
        )
    elif any(ord(c) > 127 for c in value):
        hint = f"quote a value with characters other than ASCII letters and digits: \"{key}='{value}'\""
    else:
        hint = (
            "quote a value holding spaces or special characters (\"key='value'\"); "
            "syntax: key=value, group=option, -m for sweeps a=1,2"
        )
    return f"cannot parse override '{override}': {hint}"
