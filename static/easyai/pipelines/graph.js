/* A pipeline's DAG drawn with Cytoscape.js and its dagre layout (static/vendor/cytoscape/), top to bottom.
 *
 * EasyAIPipelineGraph.draw(container, graph, options) draws {nodes: [{id, foreach, when}], edges: [{source,
 * target}]} and returns the Cytoscape instance (also kept as container.easyaiGraph for the tests and the other
 * scripts). setStates(cy, {name: state}) colours the nodes by step state; options.onTap(name) is called when a
 * node is clicked. The colours are those of the page's badges (pipelines.css).
 */
(function () {
  "use strict";

  var COLOURS = {
    waiting: "#adb5bd",
    skipped: "#e9ecef",
    running: "#0d6efd",
    retrying: "#fd7e14",
    cached: "#20c997",
    success: "#198754",
    failed: "#dc3545",
    stopped: "#343a40"
  };
  var DRAFT = "#6f42c1"; // the editor's nodes: no state yet

  function style() {
    var rules = [
      {
        selector: "node",
        style: {
          shape: "round-rectangle",
          label: "data(label)",
          "text-valign": "center",
          "text-halign": "center",
          color: "#fff",
          "font-size": 13,
          width: "label",
          height: 34,
          "padding-left": 14,
          "padding-right": 14,
          "background-color": DRAFT,
          "border-width": 1,
          "border-color": "#495057"
        }
      },
      { selector: "node[?foreach]", style: { "border-width": 3, "border-style": "double" } },
      {
        selector: "edge",
        style: {
          width: 2,
          "line-color": "#adb5bd",
          "target-arrow-color": "#adb5bd",
          "target-arrow-shape": "triangle",
          "curve-style": "bezier"
        }
      },
      { selector: "node:selected", style: { "overlay-color": "#0d6efd", "overlay-opacity": 0.15 } }
    ];
    Object.keys(COLOURS).forEach(function (state) {
      rules.push({ selector: "node.state-" + state, style: { "background-color": COLOURS[state] } });
    });
    rules.push({ selector: "node.state-skipped", style: { color: "#495057", "border-style": "dashed" } });
    return rules;
  }

  function elements(graph) {
    var items = [];
    (graph.nodes || []).forEach(function (node) {
      items.push({
        group: "nodes",
        data: { id: node.id, label: node.foreach ? node.id + " ×" : node.id, foreach: !!node.foreach }
      });
    });
    (graph.edges || []).forEach(function (edge) {
      items.push({ group: "edges", data: { id: edge.source + "->" + edge.target, source: edge.source, target: edge.target } });
    });
    return items;
  }

  function layout(cy) {
    cy.layout({ name: "dagre", rankDir: "TB", nodeSep: 30, rankSep: 45, padding: 20, fit: true }).run();
    if (cy.zoom() > 1.4) {
      cy.zoom(1.4);
      cy.center();
    }
  }

  function draw(container, graph, options) {
    options = options || {};
    var cy = container.easyaiGraph;
    if (cy) {
      cy.elements().remove();
      cy.add(elements(graph));
    } else {
      cy = window.cytoscape({
        container: container,
        elements: elements(graph),
        style: style(),
        minZoom: 0.2,
        maxZoom: 3,
        wheelSensitivity: 0.3,
        boxSelectionEnabled: false,
        autoungrabify: true
      });
      container.easyaiGraph = cy;
      cy.on("tap", "node", function (event) {
        if (container.easyaiOnTap) {
          container.easyaiOnTap(event.target.id());
        }
      });
      cy.on("mouseover", "node", function () {
        container.style.cursor = container.easyaiOnTap ? "pointer" : "";
      });
      cy.on("mouseout", "node", function () {
        container.style.cursor = "";
      });
    }
    if (options.onTap) {
      container.easyaiOnTap = options.onTap;
    }
    layout(cy);
    container.setAttribute("data-nodes", String(cy.nodes().length));
    return cy;
  }

  function setStates(cy, states) {
    cy.nodes().forEach(function (node) {
      var state = states[node.id()];
      Object.keys(COLOURS).forEach(function (known) {
        node.removeClass("state-" + known);
      });
      if (state) {
        node.addClass("state-" + state);
      }
      node.data("state", state || "");
    });
  }

  window.EasyAIPipelineGraph = { draw: draw, setStates: setStates, COLOURS: COLOURS };
})();
