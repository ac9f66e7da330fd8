-- Argo CD health of a Meridian GlobalNetworkPolicy (policy.meridian.io), read from its status
-- conditions. Runs without the string and math libraries (argocd-cm customizations have no
-- useOpenLibs).
local hs = { status = "Progressing", message = "Waiting for Meridian to report the GlobalNetworkPolicy's status" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.status.observedGeneration == nil or obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for Meridian to observe generation " .. obj.metadata.generation
  return hs
end
local ready, reconciling
for _, c in ipairs(obj.status.conditions) do
  -- Stalled: a member's form cannot hold the policy, a member refused it, or its tier or
  -- placement is wrong.
  if c.type == "Stalled" and c.status == "True" then
    return { status = "Degraded", message = c.message }
  end
  if c.type == "Ready" then ready = c end
  if c.type == "Reconciling" then reconciling = c end
end
if reconciling ~= nil and reconciling.status == "True" then
  return { status = "Progressing", message = reconciling.message }
end
if ready ~= nil then
  if ready.status == "True" then
    return { status = "Healthy", message = ready.message }
  end
  return { status = "Progressing", message = ready.message }
end
return hs
