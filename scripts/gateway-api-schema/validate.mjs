// Validates Gateway API objects (a JSON array in argv[2]) against the Gateway API's schemas,
// as compiled by @kubernetes-models/gateway-api. Exits 1 on the first invalid object.
import { readFileSync } from "node:fs";
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";

const kinds = { "gateway.networking.k8s.io/v1/HTTPRoute": HTTPRoute };
const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failed = 0;
for (const { source, object } of objects) {
  const Model = kinds[`${object.apiVersion}/${object.kind}`];
  const id = `${source}: ${object.kind}/${object.metadata?.name}`;
  if (!Model) {
    console.error(`ERROR ${id}: no schema for ${object.apiVersion} ${object.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`INFO ${id} passed against the Gateway API schema`);
  } catch (e) {
    console.error(`ERROR ${id} did not validate: ${e.message}`);
    failed++;
  }
}
console.log(`${objects.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
