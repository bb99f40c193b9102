"""Inside the CNN: reference implementations for the course notebooks.

The base (imported here) covers what every notebook needs; each topic has its own module, imported
by name: ``helpers.filters``, ``helpers.digits`` (the small scikit-learn digits CNN reused by
several assignments), and later ``helpers.activations``, ``helpers.saliency``, ...

>>> import helpers
>>> model = helpers.load_model()              # EfficientNet-Lite0, ImageNet weights, bundled
>>> x = helpers.load_image("chelsea", size=224)
>>> int(model(x).argmax())                    # 285: Egyptian cat
285
"""
from .images import image_info, list_images, load_image, resize_image, to_numpy_image
from .models import MODEL_NAMES, EfficientNetLite, imagenet_labels, load_model, torchvision_model_names
from .plotting import rescale, show_filters, show_heatmap, show_images
from .runtime import environment_report, fast, get_device, is_fast, is_grading, progress, seed_everything
from .taps import features, layer_names

__version__ = "0.1.0"

__all__ = [
    "MODEL_NAMES", "EfficientNetLite", "environment_report", "fast", "features", "get_device",
    "image_info", "imagenet_labels", "is_fast", "is_grading", "layer_names", "list_images",
    "load_image", "load_model", "progress", "rescale", "resize_image", "seed_everything",
    "show_filters", "show_heatmap", "show_images", "to_numpy_image", "torchvision_model_names",
]
