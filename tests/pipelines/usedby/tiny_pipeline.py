"""A tiny pipeline with every parameter type, registered in tests as a stand-in for kfpc's pipelines."""

from kfp import dsl


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def add(a: int, b: float) -> float:
    return a + b


def build(target: str = "kfp"):
    """Factory in the registry's shape: ``build(target) -> @dsl.pipeline``."""

    @dsl.pipeline(name="tiny-pipeline", description=f"tiny test pipeline for {target}")
    def tiny(a: int, b: float = 1.5, label: str = "x", flag: bool = False, columns: list = []):  # noqa: B006
        first = add(a=a, b=b)
        add(a=a, b=first.output)

    return tiny
