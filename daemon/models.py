"""The served model: loading, verification and the swap to a newly promoted version.

A new version is loaded and verified on a background thread while the old one keeps serving.
The service swaps between batches, so one version classifies a whole batch, and the old model is
released only after the new one is in place.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from daemon.errors import DaemonError, IncompatibleModelError
from daemon.mover import check_class_names
from registry.errors import RegistryError
from registry.types import PRODUCTION, ModelVersion
from vision.errors import VisionError
from vision.images import PREPROCESSING_ID

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingModel:
    """A verified, loaded model version ready to classify."""

    version: ModelVersion
    model: Any
    input_size: tuple[int, int]

    @property
    def label(self) -> str:
        return f"{self.version.model_name} v{self.version.version}"


def check_preprocessing(version: ModelVersion) -> None:
    """Reject a version trained on other pixels than `vision.images.load_image` produces.

    Raises:
        IncompatibleModelError: the stored preprocessing id differs from PREPROCESSING_ID.
    """
    if version.preprocessing != PREPROCESSING_ID:
        raise IncompatibleModelError(
            f"model {version.model_name} v{version.version} was trained with preprocessing "
            f"{version.preprocessing!r} but this sortbox loads images with {PREPROCESSING_ID!r}, "
            "so its predictions would not match its training; retrain it with this sortbox and "
            "promote the new version"
        )


def load_serving_model(registry, version: ModelVersion) -> ServingModel:
    """Check a version's class names and artifact checksum, then load it and check its outputs.

    Raises:
        IncompatibleModelError: the version's preprocessing differs from the image loader's.
        UnsafeCategoryError: a class name could write outside the output folder.
        ArtifactError: the artifact is missing or its sha256 differs.
        ModelLoadError: the file does not load or its output size differs from the class count.
    """
    # These checks are cheap and run before Keras is imported.
    check_preprocessing(version)
    check_class_names(version.class_names)
    registry.verify_artifact(version)

    from vision.errors import ModelLoadError
    from vision.inference import load_model, model_input_size

    model = load_model(version.artifact_uri)
    outputs = model.class_count
    if outputs != len(version.class_names):
        raise ModelLoadError(
            f"model {version.model_name} v{version.version} has {outputs} outputs but "
            f"{len(version.class_names)} class names; register it again with matching classes"
        )
    input_size = tuple(model_input_size(model))
    if input_size != tuple(version.image_size):
        raise ModelLoadError(
            f"model {version.model_name} v{version.version} takes {input_size[0]}x{input_size[1]} "
            f"images but is registered with image size {version.image_size[0]}x"
            f"{version.image_size[1]}; register it again with its real input size"
        )
    return ServingModel(version=version, model=model, input_size=input_size)


class ModelHolder:
    """Keep the model that the serving alias points to, and load its successor in the background.

    Every method is called from the service thread, except the loader which runs on the holder's
    own single worker thread.

    Args:
        registry: The opened registry.
        model_name: Registered model to serve.
        alias: Alias to follow. Defaults to `production`.
        loader: Function that turns a ModelVersion into a ServingModel; tests may wrap it.
    """

    def __init__(
        self,
        registry,
        model_name: str,
        *,
        alias: str = PRODUCTION,
        loader: Callable[[Any, ModelVersion], ServingModel] = load_serving_model,
    ):
        self._registry = registry
        self.model_name = model_name
        self._alias = alias
        self._loader = loader
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self._loading: tuple[int, Future] | None = None
        self._failed_version_id: int | None = None
        self._warned_missing = False
        self.current: ServingModel | None = None

    def _alias_version(self) -> ModelVersion | None:
        return self._registry.get_alias(self.model_name, self._alias)

    def load_now(self) -> ServingModel | None:
        """Load the alias's version synchronously, at start-up. Errors are logged, not raised."""
        version = self._alias_version()
        if version is None:
            self._warn_missing()
            return None
        try:
            self.current = self._loader(self._registry, version)
        except (DaemonError, RegistryError, VisionError) as error:
            self._failed_version_id = version.id
            logger.error(
                "cannot serve %s v%s: %s", version.model_name, version.version, error
            )
            return None
        logger.info("serving %s (version id %s)", self.current.label, version.id)
        return self.current

    def _warn_missing(self) -> None:
        if not self._warned_missing:
            self._warned_missing = True
            logger.warning(
                "the %r alias of model %r points to no version; files stay in the inbox until "
                "one is promoted with `sortbox models promote`",
                self._alias,
                self.model_name,
            )

    def poll(self, *, force: bool = False) -> None:
        """Start loading the alias's version in the background if it differs from the served one.

        Args:
            force: Retry a version that failed to load before (SIGHUP sets it).
        """
        if self._loading is not None:
            return
        try:
            version = self._alias_version()
        except RegistryError as error:
            logger.error("cannot read the %r alias of %r: %s", self._alias, self.model_name, error)
            return
        if version is None:
            if self.current is None:
                self._warn_missing()
            return
        if self.current is not None and self.current.version.id == version.id:
            return
        if version.id == self._failed_version_id and not force:
            return
        logger.info(
            "loading %s v%s (version id %s) in the background",
            version.model_name,
            version.version,
            version.id,
        )
        self._loading = (version.id, self._executor.submit(self._loader, self._registry, version))

    def swap_if_ready(self) -> ServingModel | None:
        """Put a finished background load in service; return the new model, or None.

        A failed load is logged, and the old model keeps serving.
        """
        if self._loading is None or not self._loading[1].done():
            return None
        version_id, future = self._loading
        self._loading = None
        try:
            loaded = future.result()
        except (DaemonError, RegistryError, VisionError) as error:
            self._failed_version_id = version_id
            serving = self.current.label if self.current is not None else "nothing"
            logger.error(
                "cannot load version id %s, still serving %s: %s", version_id, serving, error
            )
            return None
        except Exception:
            self._failed_version_id = version_id
            logger.exception("unexpected error loading version id %s", version_id)
            return None

        previous = self.current
        self.current = loaded
        self._failed_version_id = None
        logger.info(
            "swapped model: now serving %s (was %s)",
            loaded.label,
            previous.label if previous is not None else "nothing",
        )
        return loaded

    def close(self) -> None:
        """Stop the loader thread, waiting for a load in progress to end."""
        self._executor.shutdown(wait=True, cancel_futures=True)
