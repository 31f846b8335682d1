// The AKS cluster's own diagnostic setting: its control-plane audit log, category
// kube-audit-admin (every request except get and list), streamed to the same hub as the
// Activity Log. The daemon routes records by category, so one hub carries both. Deployed by
// main.bicep into the cluster's resource group when `clusterName` is given. The Event Hubs
// namespace must be in the cluster's region (a resource diagnostic setting cannot cross
// regions).

@description('Name of the managed cluster (in this resource group).')
param clusterName string

@description('Authorization rule of the Event Hubs namespace that diagnostic settings send with.')
param eventHubAuthorizationRuleId string

@description('Event hub the audit records go to.')
param hubName string

resource cluster 'Microsoft.ContainerService/managedClusters@2024-05-01' existing = {
  name: clusterName
}

resource audit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'accessdrift-kube-audit'
  scope: cluster
  properties: {
    eventHubAuthorizationRuleId: eventHubAuthorizationRuleId
    eventHubName: hubName
    logs: [
      {
        category: 'kube-audit-admin'
        enabled: true
      }
    ]
  }
}
