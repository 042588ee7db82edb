// Weave Scope's node shapes as sigma node programs: the API names a node's `shape` and sigma
// draws each shape with its program. Every program draws a square around the node and keeps
// the pixels inside its shape's signed distance function (GLSL, in units of the node's
// radius, negative inside), so clicks and hovers hit the shape itself: sigma picks nodes by
// drawing them again in id colours with PICKING_MODE defined.

const { NodeProgram } = globalThis.Sigma.rendering;
const { floatColor } = globalThis.Sigma.utils;
const { UNSIGNED_BYTE, FLOAT, TRIANGLES } = WebGLRenderingContext;

// A regular polygon of `sides` with a flat bottom, circumradius 1: the point's angle is
// folded into one side's sector and measured against that side, a segment at the apothem.
function polygon(sides) {
  return `
  float half_sector = ${(Math.PI / sides).toFixed(8)};
  float folded = mod(atan(p.x, -p.y) + half_sector, 2.0 * half_sector) - half_sector;
  vec2 q = length(p) * vec2(cos(folded), abs(sin(folded)));
  q -= vec2(cos(half_sector), clamp(q.y, 0.0, sin(half_sector)));
  return length(q) * sign(q.x);`;
}

const DISTANCES = {
  circle: "return length(p) - 1.0;",
  square: `
  vec2 d = abs(p) - vec2(0.8);
  return length(max(d, 0.0)) + min(max(d.x, d.y), 0.0);`,
  triangle: polygon(3),
  pentagon: polygon(5),
  hexagon: polygon(6),
  heptagon: polygon(7),
  octagon: polygon(8),
  // Scope's "the Internet": three overlapping discs over a flat base.
  cloud: `
  float d = length(p - vec2(-0.5, -0.1)) - 0.45;
  d = min(d, length(p - vec2(0.5, -0.1)) - 0.45);
  d = min(d, length(p - vec2(0.0, 0.2)) - 0.6);
  vec2 base = abs(p - vec2(0.0, -0.3)) - vec2(0.5, 0.25);
  return min(d, length(max(base, 0.0)) + min(max(base.x, base.y), 0.0));`,
};

const VERTEX_SHADER = `
attribute vec4 a_id;
attribute vec4 a_color;
attribute vec2 a_position;
attribute float a_size;
attribute vec2 a_corner;

uniform mat3 u_matrix;
uniform float u_sizeRatio;
uniform float u_correctionRatio;

varying vec4 v_color;
varying vec2 v_offset;
varying float v_feather;

const float bias = 255.0 / 254.0;
// Room around the unit shape for the cloud's bumps and the antialiased edge.
const float margin = 1.25;

void main() {
  // As sigma's circles: a node's size is its radius in pixels.
  float radius = a_size * u_correctionRatio / u_sizeRatio * 2.0;
  gl_Position = vec4((u_matrix * vec3(a_position + a_corner * margin * radius, 1)).xy, 0, 1);
  v_offset = a_corner * margin;
  v_feather = u_correctionRatio * 2.0 / radius;
  #ifdef PICKING_MODE
  v_color = a_id;
  #else
  v_color = a_color;
  #endif
  v_color.a *= bias;
}
`;

function fragmentShader(distance) {
  return `
precision highp float;

varying vec4 v_color;
varying vec2 v_offset;
varying float v_feather;

float shape_distance(vec2 p) {${distance}
}

void main(void) {
  float d = shape_distance(v_offset);
  #ifdef PICKING_MODE
  gl_FragColor = d > 0.0 ? vec4(0.0) : v_color;
  #else
  gl_FragColor = mix(v_color, vec4(0.0), clamp(d / v_feather + 0.5, 0.0, 1.0));
  #endif
}
`;
}

function program(distance) {
  const fragment = fragmentShader(distance);
  return class extends NodeProgram {
    getDefinition() {
      return {
        VERTICES: 6,
        VERTEX_SHADER_SOURCE: VERTEX_SHADER,
        FRAGMENT_SHADER_SOURCE: fragment,
        METHOD: TRIANGLES,
        UNIFORMS: ["u_sizeRatio", "u_correctionRatio", "u_matrix"],
        ATTRIBUTES: [
          { name: "a_position", size: 2, type: FLOAT },
          { name: "a_size", size: 1, type: FLOAT },
          { name: "a_color", size: 4, type: UNSIGNED_BYTE, normalized: true },
          { name: "a_id", size: 4, type: UNSIGNED_BYTE, normalized: true },
        ],
        CONSTANT_ATTRIBUTES: [{ name: "a_corner", size: 2, type: FLOAT }],
        // Two triangles, the square around the node.
        CONSTANT_DATA: [[-1, -1], [1, -1], [1, 1], [-1, -1], [1, 1], [-1, 1]],
      };
    }

    processVisibleItem(nodeIndex, startIndex, data) {
      const array = this.array;
      array[startIndex++] = data.x;
      array[startIndex++] = data.y;
      array[startIndex++] = data.size;
      array[startIndex++] = floatColor(data.color);
      array[startIndex++] = nodeIndex;
    }

    setUniforms(params, { gl, uniformLocations }) {
      gl.uniform1f(uniformLocations.u_correctionRatio, params.correctionRatio);
      gl.uniform1f(uniformLocations.u_sizeRatio, params.sizeRatio);
      gl.uniformMatrix3fv(uniformLocations.u_matrix, false, params.matrix);
    }
  };
}

/** Sigma's `nodeProgramClasses`: a program per shape, by the API's name. */
export const SHAPE_PROGRAMS = Object.fromEntries(Object.entries(DISTANCES).map(([name, distance]) => [name, program(distance)]));

/** The program sigma draws the API's `shape` with; an unknown shape is a circle. */
export function shapeOf(apiShape) {
  return apiShape in DISTANCES ? apiShape : "circle";
}
