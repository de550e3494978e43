// The page of tests/test_ofrep_browser.py: OpenFeature's OFREP web provider,
// bundled by esbuild with nothing fetched from another host at page load.
import { OpenFeature, ProviderEvents } from "@openfeature/web-sdk";
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";

const base = new URLSearchParams(location.search).get("ofrep");
const out = document.getElementById("banner");
const client = OpenFeature.getClient();
const show = () => {
  out.textContent = client.getStringValue("banner", "grey");
};
client.addHandler(ProviderEvents.ConfigurationChanged, show);
await OpenFeature.setContext({ targetingKey: "u1" });
await OpenFeature.setProviderAndWait(new OFREPWebProvider({ baseUrl: base, cacheMode: "disabled" }));
show();
document.getElementById("status").textContent = "ready";
