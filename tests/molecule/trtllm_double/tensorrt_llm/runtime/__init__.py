from tensorrt_llm.runtime.model_runner import ModelRunner  # noqa: F401
