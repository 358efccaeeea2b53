/**
 * The `EventLog` port on Apache Kafka (kafkajs).
 * @packageDocumentation
 */
export { createKafkaLog } from './kafka-log.js';
export { compileKafkaLogOptions } from './kafka-options.js';
export type { CompiledKafkaLogOptions, KafkaConsumerTuning, KafkaLogOptions } from './kafka-options.js';
