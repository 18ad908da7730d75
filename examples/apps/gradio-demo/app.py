"""An iris classifier demo in Gradio: the model registry example's service when it is set, a built-in rule
otherwise.

Publish it:  easyai app deploy examples/apps/gradio-demo --kind gradio --entry app.py
Point it at the served model (examples/serving) with two settings of the app:
  env     DEMO_SERVICE=http://localhost:8001/serving/<team>/iris   (the service's URL)
  secret  DEMO_TOKEN=<an API token that may call it>               (kept write-only)
The platform sets the address, port and root path (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT, GRADIO_ROOT_PATH).
"""

import json
import os
import urllib.request

import gradio as gr

SPECIES = ["setosa", "versicolor", "virginica"]
MEANS = [[5.006, 3.428, 1.462, 0.246], [5.936, 2.770, 4.260, 1.326], [6.588, 2.974, 5.552, 2.026]]


def built_in(features: list[float]) -> int:
    distances = [sum((a - b) ** 2 for a, b in zip(features, mean, strict=True)) for mean in MEANS]
    return distances.index(min(distances))


def served(features: list[float]) -> int:
    url = os.environ["DEMO_SERVICE"].rstrip("/") + "/v1/models/iris:predict"
    request = urllib.request.Request(
        url,
        data=json.dumps({"instances": [features]}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Token {os.environ.get('DEMO_TOKEN', '')}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.loads(response.read())["predictions"][0])


def classify(sepal_length: float, sepal_width: float, petal_length: float, petal_width: float) -> str:
    features = [sepal_length, sepal_width, petal_length, petal_width]
    if os.environ.get("DEMO_SERVICE"):
        try:
            return f"Prediction: {SPECIES[served(features)]} (the served model)"
        except Exception as exc:  # the service is down: fall back
            return f"Prediction: {SPECIES[built_in(features)]} (built-in rule; the service failed: {exc})"
    return f"Prediction: {SPECIES[built_in(features)]} (built-in rule)"


with gr.Blocks(title="Iris species") as demo:
    gr.Markdown("# Iris species")
    with gr.Row():
        sepal_length = gr.Number(label="Sepal length (cm)", value=5.1)
        sepal_width = gr.Number(label="Sepal width (cm)", value=3.5)
        petal_length = gr.Number(label="Petal length (cm)", value=1.4)
        petal_width = gr.Number(label="Petal width (cm)", value=0.2)
    button = gr.Button("Classify")
    result = gr.Textbox(label="Result")
    button.click(classify, inputs=[sepal_length, sepal_width, petal_length, petal_width], outputs=result)

if __name__ == "__main__":
    demo.launch()
