"""A stand-in for vLLM's offline API at its boundary (LLM, SamplingParams), for machines
without a GPU: it records how it was called and answers every chat with a fixed reply of the
answer's shape. The real vLLM is exercised only on a GPU machine (docs/llm.md)."""

CALLS: list = []


class SamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class _Completion:
    def __init__(self, text: str):
        self.text = text
        self.token_ids = list(range(12))
        self.finish_reason = "stop"


class _Output:
    def __init__(self, text: str):
        self.prompt_token_ids = list(range(40))
        self.outputs = [_Completion(text)]


class LLM:
    def __init__(self, **kwargs):
        CALLS.append(("init", kwargs))

    def chat(self, conversations, sampling_params, use_tqdm=True):
        CALLS.append(("chat", conversations, sampling_params))
        reply = '{"decision": "BUY", "confidence": 70.5, "reason": "cheap", "ratios": {"pe": 9.5}}'
        return [_Output(reply) for _ in conversations]
