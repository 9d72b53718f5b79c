"""The HTTP API's request and response bodies, in OpenAI's shapes where OpenAI has one.

They are pydantic models so that FastAPI validates what comes in and ``/docs`` shows what goes
out. Requests accept fields qa does not use (``temperature``, ``top_p``, ``user``, ...): chat
front ends send them by habit, and qa's answer rules fix what they would change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qa.answer import Answer

MODEL_ID = "qa"
"""The one model name the API serves (``GET /v1/models``)."""


class ContentPart(BaseModel):
    """One part of a message's content; qa reads ``text`` parts only."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``: the last message is the question, earlier user and
    assistant messages the conversation it follows; system messages are ignored (qa's own
    instructions decide how it answers)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"model": "qa", "messages": [{"role": "user", "content": "When did it open?"}]}
            ]
        },
    )
    model: str = Field(
        MODEL_ID, description="The workspace to answer from: 'qa' or another of GET /v1/models."
    )
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, description="Only 1: qa gives one answer per question.")
    tools: list[Any] | None = Field(None, description="Not supported.")
    tool_choice: Any = Field(None, description="Not supported (only 'none').")
    functions: list[Any] | None = Field(None, description="Not supported.")
    function_call: Any = Field(None, description="Not supported (only 'none').")
    response_format: dict[str, Any] | None = Field(
        None, description="Only {'type': 'text'}: qa's answers have their own format."
    )


class CitationOut(BaseModel):
    """A passage the answer relies on; ``n`` matches the ``[n]`` mark in the content."""

    n: int
    source: str
    location: str = Field(description="The source as people cite it, e.g. 'report.pdf, p. 3'.")
    page: int = Field(description="1-based PDF page; 0 for formats without pages.")
    text: str = Field(description="The whole passage.")
    quote: str = Field(description="The passage's sentence that backs the answer ('' if none).")
    chunk_id: str
    score: float


class TimingsOut(BaseModel):
    """Where the time went, in milliseconds (``queued_ms``: waiting for the model)."""

    queued_ms: float
    retrieve_ms: float
    first_token_ms: float
    total_ms: float
    prompt_tokens: int
    prompt_eval_tokens: int
    generated_tokens: int
    decide_ms: float = 0.0
    """After the answering pass: the checks and any extra pass."""
    read: str = "wide"
    """Which passages a short answer was read from: 'narrow', 'wide-after-narrow' or 'wide'."""
    narrow_ms: float = 0.0


class QAExtra(BaseModel):
    """The ``qa`` field of a reply: what qa knows about its answer beyond the text."""

    status: str = Field(
        description="'answered' (the decision stands behind it), 'unconfirmed' (a candidate the "
        "documents do not confirm, quoted with its sentence; never asserted) or 'not_found'."
    )
    abstained: bool = Field(description="True unless status is 'answered': nothing asserted.")
    answerability: float | None = Field(
        description="The learned decision's P(answer is right); null if it did not run."
    )
    confidence: float | None = Field(description="1 - the model's P('none'); null if unknown.")
    decided_by: str = Field(
        description="'hidden-state', 'log-probabilities', 'unavailable', 'off' or ''."
    )
    shape: str = Field(description="'short', 'yesno', 'list', 'open' or 'overview'.")
    planted: str = Field(description="Non-empty when the reply was withheld as planted text.")
    standalone_question: str = Field(description="The question as qa understood it.")
    citations: list[CitationOut]
    timings: TimingsOut

    @classmethod
    def of(cls, answer: Answer, queued_s: float) -> QAExtra:
        t = answer.timings
        return cls(
            status=answer.status,
            abstained=answer.abstained,
            answerability=answer.answerability,
            confidence=answer.confidence,
            decided_by=answer.decided_by,
            shape=answer.shape,
            planted=answer.planted,
            standalone_question=answer.standalone_question,
            citations=[
                CitationOut(
                    n=c.n,
                    source=c.source,
                    location=c.location,
                    page=c.page,
                    text=c.text,
                    quote=c.quote,
                    chunk_id=c.chunk_id,
                    score=c.score,
                )
                for c in answer.citations
            ],
            timings=TimingsOut(
                queued_ms=round(queued_s * 1000, 1),
                retrieve_ms=t.retrieve_ms,
                first_token_ms=t.first_token_ms,
                total_ms=t.total_ms,
                prompt_tokens=t.prompt_tokens,
                prompt_eval_tokens=t.prompt_eval_tokens,
                generated_tokens=t.generated_tokens,
                decide_ms=t.decide_ms,
                read=t.read,
                narrow_ms=t.narrow_ms,
            ),
        )


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, answer: Answer) -> Usage:
        t = answer.timings
        return cls(
            prompt_tokens=t.prompt_tokens,
            completion_tokens=t.generated_tokens,
            total_tokens=t.prompt_tokens + t.generated_tokens,
        )


class ReplyMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ReplyMessage
    finish_reason: Literal["stop"] = "stop"


class ChatCompletion(BaseModel):
    """A reply, as OpenAI's ``chat.completion`` plus the ``qa`` field."""

    id: str = Field(description="The reply's id; rate it with POST /v1/feedback.")
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = MODEL_ID
    choices: list[Choice]
    usage: Usage
    qa: QAExtra


class ModelCard(BaseModel):
    id: str = MODEL_ID
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "qa"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class DocumentOut(BaseModel):
    """An indexed document."""

    name: str = Field(description="Its name in the index (DELETE /v1/documents/{name}).")
    type: str
    chunks: int
    title: str
    indexed_at: str
    flagged: int = Field(description="Spans of it that read as instructions to an assistant.")


class DocumentList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DocumentOut]


class UploadResult(BaseModel):
    """What an upload did: files added (with any rename), files refused and why."""

    object: Literal["upload"] = "upload"
    added: list[str]
    refused: list[str]
    chunks_added: int
    chunks_unchanged: int
    skipped: list[str] = Field(description="Files the indexer could not read.")


class Removed(BaseModel):
    object: Literal["document.deleted"] = "document.deleted"
    name: str
    deleted: bool = True
    chunks_removed: int


class FeedbackRequest(BaseModel):
    """A rating of a reply by its id, as the UI's 👍/👎."""

    id: str = Field(description="The reply's id (the 'id' of a chat completion).")
    verdict: Literal["up", "down"]
    correction: str | None = Field(
        None, max_length=2000, description="For 'down': what it should have said."
    )
    unanswerable: bool = Field(False, description="For 'down': the documents don't say.")


class FeedbackOut(BaseModel):
    id: str = Field(description="The stored rating's id (qa feedback list).")
    object: Literal["feedback"] = "feedback"
    verdict: Literal["up", "down"]
    expectation: str = Field(description="What the regression item checks, in words.")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """Every refusal, in OpenAI's shape."""

    error: ErrorDetail
