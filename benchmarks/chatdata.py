"""Chat-like agent states for the benchmarks: varied text, seeded, with no repeated filler.

A state looks like what an agent framework saves: a system prompt, a list of messages from the
user, the assistant and tools (prose, code blocks, tool-call arguments, ids and hashes), and a
little metadata. The words follow a Zipf distribution over a vocabulary of common English and
programming words, so the text compresses like real conversation (about 3x with zlib), not like
a repeated string (hundreds of times) or random bytes (not at all).
"""

from __future__ import annotations

import random
import string
from itertools import accumulate
from typing import Any

import orjson

_WORDS_TEXT = """
the of and to a in is it you that he was for on are with as I his they be at one have this from
or had by hot word but what some we can out other were all there when up use your how said an
each she which do their time if will way about many then them write would like so these her long
make thing see him two has look more day could go come did number sound no most people my over
know water than call first who may down side been now find any new work part take get place made
live where after back little only round man year came show every good me give our under name very
through just form sentence great think say help low line differ turn cause much mean before move
right boy old too same tell does set three want air well also play small end put home read hand
port large spell add even land here must big high such follow act why ask men change went light
kind off need house picture try us again animal point mother world near build self earth father
head stand own page should country found answer school grow study still learn plant cover food sun
four between state keep eye never last let thought city tree cross farm hard start might story saw
far sea draw left late run don't while press close night real life few north open seem together
next white children begin got walk example ease paper group always music those both mark often
letter until mile river car feet care second book carry took science eat room friend began idea
fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl
usual young ready above ever red list though feel talk bird soon body dog family direct pose leave
song measure door product black short numeral class wind question happen complete ship area half
rock order fire south problem piece told knew pass since top whole king space heard best hour
better true during hundred five remember step early hold west ground interest reach fast verb sing
listen six table travel less morning ten simple several vowel toward war lay against pattern slow
center love person money serve appear road map rain rule govern pull cold notice voice unit power
function class method return value error exception request response server client database query
index table column row transaction commit rollback cursor connection pool thread process memory
cache buffer file path directory module package import export test assert mock fixture deploy
build release version branch merge rebase conflict review approve config setting option flag
argument parameter variable constant type string integer float boolean list dict tuple set map
filter reduce sort search parse format encode decode serialize compress checkpoint agent tool call
model prompt token context message user assistant system session retry timeout latency throughput
"""
_WORDS = _WORDS_TEXT.split()

_CODE_LINES = [
    "def {f}({a}, {b}):", "    return {a} + {b}", "for {a} in {b}:", "    if {a} is None:",
    "        raise ValueError(\"{w} {w2}\")", "import {f}", "from {f} import {b}",
    "    {a} = {f}({b}, timeout={n})", "class {F}({G}):", "    \"\"\"{W} the {w} {w2}.\"\"\"",
    "SELECT {a}, {b} FROM {f} WHERE id = {n};", "  \"{a}\": \"{w}\",", "$ pytest -k {f} -x",
    "    assert {a} == {n}", "    logger.info(\"{w} %s\", {a})", "{a}.{f}({n}, \"{w2}\")",
]

_ZIPF = list(accumulate(1.0 / (rank + 1) ** 1.07 for rank in range(len(_WORDS))))


def _ident(rng: random.Random) -> str:
    return "_".join(rng.choices(_WORDS, cum_weights=_ZIPF, k=rng.randint(1, 3))).replace("'", "")


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, cum_weights=_ZIPF, k=rng.randint(4, 22))
    if rng.random() < 0.15:
        words.insert(rng.randrange(len(words)), str(rng.randint(0, 100_000)))
    if rng.random() < 0.1:
        words.insert(rng.randrange(len(words)), f"`{_ident(rng)}()`")
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice(".....?!:")


def _code(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(3, 14)):
        a, b = _ident(rng), _ident(rng)
        f = _ident(rng)
        lines.append(rng.choice(_CODE_LINES).format(
            a=a, b=b, f=f, F=f.title().replace("_", ""), G=b.title().replace("_", ""),
            w=rng.choice(_WORDS), w2=rng.choice(_WORDS), W=rng.choice(_WORDS).title(),
            n=rng.randint(0, 9999)))
    return "```python\n" + "\n".join(lines) + "\n```"


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(string.hexdigits[:16], k=n))


def _content(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 5)):
        if rng.random() < 0.2:
            parts.append(_code(rng))
        else:
            parts.append(" ".join(_sentence(rng) for _ in range(rng.randint(1, 6))))
    return "\n\n".join(parts)


def _message(rng: random.Random, index: int) -> dict[str, Any]:
    role = rng.choices(("user", "assistant", "tool"), weights=(3, 4, 2))[0]
    message: dict[str, Any] = {"id": f"msg_{_hex(rng, 24)}", "role": role}
    if role == "tool":
        message["tool_call_id"] = f"call_{_hex(rng, 16)}"
        message["content"] = orjson.dumps(
            {"status": rng.choice(("ok", "error")), "rows": rng.randint(0, 500),
             "output": _content(rng), "elapsed_ms": round(rng.random() * 900, 3)}).decode()
    else:
        message["content"] = _content(rng)
    if role == "assistant" and rng.random() < 0.3:
        message["tool_calls"] = [{
            "id": f"call_{_hex(rng, 16)}", "type": "function",
            "function": {"name": _ident(rng), "arguments": orjson.dumps(
                {_ident(rng): rng.choice((_sentence(rng), rng.randint(0, 10**6), True))
                 for _ in range(rng.randint(1, 4))}).decode()},
        }]
    message["tokens"] = rng.randint(5, 1200)
    message["created_at"] = 1_700_000_000_000 + index * 7919
    return message


def chat_state(size: int, seed: int) -> dict[str, Any]:
    """A chat-like state whose compact JSON is about ``size`` bytes (a little over)."""
    rng = random.Random(seed)
    state: dict[str, Any] = {
        "system": " ".join(_sentence(rng) for _ in range(6)),
        "messages": [],
        "metadata": {"model": rng.choice(("gpt-4o", "claude-3-5-sonnet", "llama-3-70b")),
                     "temperature": round(rng.random(), 2), "run_id": _hex(rng, 32),
                     "step": rng.randint(1, 500)},
    }
    total = len(orjson.dumps(state))
    messages = state["messages"]
    while total < size:
        message = _message(rng, len(messages))
        messages.append(message)
        total += len(orjson.dumps(message)) + 1
    return state
