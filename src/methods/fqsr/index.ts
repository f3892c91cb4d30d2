export * from "./finetune.ts";
export * from "./options.ts";
