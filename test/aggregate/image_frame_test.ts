import assert from "node:assert/strict";
import { segmentFrameOf } from "../../src/aggregate/image_frame.ts";
import { IMAGE_DATA_TYPE, type ImageData } from "../../src/bus/message.ts";

const JPEG = await Deno.readFile(new URL("../fixtures/mcity-gs-ne/frames/0000.jpg", import.meta.url));

const image = (over: Partial<ImageData>): ImageData => ({
  dataType: IMAGE_DATA_TYPE,
  sensorName: "cam",
  captureTimestamp: 1769272125.6,
  creationTimestamp: 1769272125.7,
  frameId: 7421057263124512769n,
  deviceName: "edge-1",
  image: JPEG,
  isEncoded: true,
  detectionResults: null,
  size: [960, 1280, 3],
  ...over,
});

Deno.test("image frame: a JPEG keeps its bytes, sensor, id and capture time, its size from the message", () => {
  const f = segmentFrameOf(image({}))!;
  assert.deepEqual(
    { ...f, data: f.data === JPEG },
    {
      sensor: "cam",
      frameId: 7421057263124512769n,
      captureTs: 1769272125.6,
      width: 1280,
      height: 960,
      format: "jpeg",
      data: true,
    },
  );
});

Deno.test("image frame: a JPEG sent with size 0x0 (some MSight publishers) gets its size from the JPEG itself", () => {
  const f = segmentFrameOf(image({ size: [0, 0, 0] }))!;
  assert.deepEqual([f.width, f.height, f.format], [1280, 960, "jpeg"]);
  // Not a JPEG and no size: nothing to encode.
  assert.equal(segmentFrameOf(image({ size: [0, 0, 0], image: new Uint8Array([1, 2, 3]) })), undefined);
});

Deno.test("image frame: raw BGR is taken with 3 channels only", () => {
  const raw = new Uint8Array(4 * 2 * 3);
  const f = segmentFrameOf(image({ isEncoded: false, image: raw, size: [2, 4, 3] }))!;
  assert.deepEqual([f.width, f.height, f.format, f.data === raw], [4, 2, "bgr24", true]);
  assert.equal(segmentFrameOf(image({ isEncoded: false, image: raw, size: [2, 3, 4] })), undefined);
  assert.equal(segmentFrameOf(image({ isEncoded: false, image: raw, size: [8, 3, 1] })), undefined);
});
