"""An iris classifier demo: the model registry example's service when it is set, a built-in rule otherwise.

Publish it:  easyai app deploy examples/apps/streamlit-demo --kind streamlit --entry app.py
Point it at the served model (examples/serving) with two settings of the app:
  env     DEMO_SERVICE=http://localhost:8001/serving/<team>/iris   (the service's URL)
  secret  DEMO_TOKEN=<an API token that may call it>               (kept write-only)
"""

import json
import os
import urllib.request

import streamlit as st

SPECIES = ["setosa", "versicolor", "virginica"]
# Per-class means of the iris data (sepal length, sepal width, petal length, petal width): a nearest-mean rule.
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


st.title("Iris species")
st.caption("Move a slider: the app reruns and classifies the flower again.")
sepal_length = st.slider("Sepal length (cm)", 4.0, 8.0, 5.1, 0.1)
sepal_width = st.slider("Sepal width (cm)", 2.0, 4.5, 3.5, 0.1)
petal_length = st.slider("Petal length (cm)", 1.0, 7.0, 1.4, 0.1)
petal_width = st.slider("Petal width (cm)", 0.1, 2.5, 0.2, 0.1)
features = [sepal_length, sepal_width, petal_length, petal_width]

if os.environ.get("DEMO_SERVICE"):
    source = "the served model"
    try:
        species = SPECIES[served(features)]
    except Exception as exc:  # the service is down: say so, and fall back
        st.warning(f"The service did not answer ({exc}); using the built-in rule.")
        source, species = "the built-in rule", SPECIES[built_in(features)]
else:
    source, species = "the built-in rule", SPECIES[built_in(features)]

st.subheader(f"Prediction: {species}")
st.write(f"From {source}, for {features}.")
