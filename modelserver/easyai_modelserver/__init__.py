"""EasyAI's model server: serves one registered model version with KServe's Python model server.

Run it as `python -m easyai_modelserver --model-dir DIR --format FMT --name NAME --http-port P`.
"""

__version__ = "0.1.0"
