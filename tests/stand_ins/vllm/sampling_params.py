"""vLLM's structured-outputs parameters (0.12 and later), as the stand-in records them."""


class StructuredOutputsParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
