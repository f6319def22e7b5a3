/** Shapes of AWS identifiers, shared by the config schema and the construct's own checks. */

/** EC2 ids are a prefix and 8 (older) or 17 lowercase hex digits. */
export const SECURITY_GROUP_ID = /^sg-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
export const SUBNET_ID = /^subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
export const VPC_ID = /^vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

/** Graviton families have a `g` after the generation digit: t4g, c7gn, m6gd, r8g. */
export const GRAVITON_INSTANCE_TYPE = /^[a-z]+\d+[a-z]*g[a-z]*\.[a-z0-9]+$/;
