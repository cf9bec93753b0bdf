// What a web app writes: esbuild bundles this the way it would bundle the app, picking the
// package's `browser` export (see browser-global-setup.ts).
export * from "vdisk";
