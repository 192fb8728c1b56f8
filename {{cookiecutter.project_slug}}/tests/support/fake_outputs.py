"""What the fake model streams besides text and function calls (used by fake_openai.py).

- Reasoning summaries: a Responses request with `reasoning.summary` gets a reasoning item
  (one summary part per thought) before its answer; a Chat Completions request with
  `reasoning_effort` gets the thoughts as `reasoning_content` deltas (DeepSeek style).
- Hosted tools: `@tool web_search`, `@tool file_search` or `@tool image_generation` in the
  newest user message, when the request offers that hosted tool, adds its call item before the
  answer (an image call streams `partial_images` partial images, as the tool asks), and a
  search cites its result: a `url_citation` or a `file_citation` on the answer.
- Citations: `FakeModel.annotations` (Responses annotation objects) go on every streamed text
  answer; Chat Completions carries the `url_citation` ones as `delta.annotations`.
"""

from __future__ import annotations

import base64
import re
from typing import Any

TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
HOSTED = re.compile(r"@tool\s+(web_search|file_search|image_generation)\b")
SEARCH_URL = "https://example.com/search-result"
FILE_ID, FILE_NAME = "file-fake-1", "handbook.pdf"
JSON = dict[str, Any]


def offered_hosted(body: JSON) -> dict[str, JSON]:
    """The hosted tools a Responses request offers, by type (web_search_preview as web_search)."""
    tools = body.get("tools") or []
    return {
        str(tool["type"]).removesuffix("_preview"): tool
        for tool in tools
        if isinstance(tool, dict) and tool.get("type") != "function"
    }


def wants_summary(body: JSON) -> bool:
    return bool((body.get("reasoning") or {}).get("summary"))


def reasoning_item(item_id: str, index: int, thoughts: list[str]) -> tuple[list[JSON], JSON]:
    """A reasoning item streamed as the Responses API does: each thought is a summary part."""
    where = {"item_id": item_id, "output_index": index}
    events: list[JSON] = [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {"id": item_id, "type": "reasoning", "summary": []},
        }
    ]
    for number, thought in enumerate(thoughts):
        part = {"type": "summary_text", "text": thought}
        at = {**where, "summary_index": number}
        events += [
            {
                "type": "response.reasoning_summary_part.added",
                **at,
                "part": {"type": "summary_text", "text": ""},
            },
            *(
                {"type": "response.reasoning_summary_text.delta", **at, "delta": piece}
                for piece in _halves(thought)
            ),
            {"type": "response.reasoning_summary_text.done", **at, "text": thought},
            {"type": "response.reasoning_summary_part.done", **at, "part": part},
        ]
    summary = [{"type": "summary_text", "text": thought} for thought in thoughts]
    done = {"id": item_id, "type": "reasoning", "summary": summary}
    events.append({"type": "response.output_item.done", "output_index": index, "item": done})
    return events, done


def hosted_call(
    name: str, item_id: str, index: int, tool: JSON, image: bytes
) -> tuple[list[JSON], JSON]:
    """One hosted tool call: added, its progress events, done."""
    if name == "image_generation":
        return _image_call(item_id, index, int(tool.get("partial_images") or 0), image)
    if name == "web_search":
        kind = "web_search_call"
        progress = ["in_progress", "searching", "completed"]
        done = {
            "id": item_id,
            "type": kind,
            "status": "completed",
            "action": {"type": "search", "query": "fake search"},
        }
    else:
        kind = "file_search_call"
        progress = ["in_progress", "searching", "completed"]
        done = {"id": item_id, "type": kind, "status": "completed", "queries": ["fake search"]}
    added = {**done, "status": "in_progress"}
    events: list[JSON] = [
        {"type": "response.output_item.added", "output_index": index, "item": added}
    ]
    events += [
        {"type": f"response.{kind}.{step}", "output_index": index, "item_id": item_id}
        for step in progress
    ]
    events.append({"type": "response.output_item.done", "output_index": index, "item": done})
    return events, done


def _image_call(item_id: str, index: int, partials: int, image: bytes) -> tuple[list[JSON], JSON]:
    encoded = base64.b64encode(image).decode()
    where = {"output_index": index, "item_id": item_id}
    added = {"id": item_id, "type": "image_generation_call", "status": "in_progress"}
    events: list[JSON] = [
        {"type": "response.output_item.added", "output_index": index, "item": added},
        {"type": "response.image_generation_call.in_progress", **where},
        {"type": "response.image_generation_call.generating", **where},
    ]
    events += [
        {
            "type": "response.image_generation_call.partial_image",
            **where,
            "partial_image_index": number,
            "partial_image_b64": encoded,
        }
        for number in range(partials)
    ]
    done = {
        "id": item_id,
        "type": "image_generation_call",
        "status": "completed",
        "result": encoded,
        "output_format": "png",
        "revised_prompt": "a fake image",
    }
    events += [
        {"type": "response.image_generation_call.completed", **where},
        {"type": "response.output_item.done", "output_index": index, "item": done},
    ]
    return events, done


def citation(name: str, text: str) -> JSON | None:
    """What a search cites in the answer `text`: its whole length."""
    if name == "web_search":
        return {
            "type": "url_citation",
            "url": SEARCH_URL,
            "title": "Search result",
            "start_index": 0,
            "end_index": len(text),
        }
    if name == "file_search":
        return {
            "type": "file_citation",
            "file_id": FILE_ID,
            "filename": FILE_NAME,
            "index": len(text),
        }
    return None


def chat_annotations(annotations: list[JSON]) -> list[JSON]:
    """The url citations as Chat Completions deltas carry them."""
    return [
        {"type": "url_citation", "url_citation": {k: v for k, v in a.items() if k != "type"}}
        for a in annotations
        if a.get("type") == "url_citation"
    ]


def _halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [piece for piece in (text[:middle], text[middle:]) if piece]
