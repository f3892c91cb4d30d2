export * from "./finetune.ts";
